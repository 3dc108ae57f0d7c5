import { sql } from 'kysely';
import pg from 'pg';
import type {
  Decision,
  DecisionRecord,
  DecisionStore,
  ListedPrepared,
} from '../../../plugin/ports/decision-store.js';
import { DeposedError } from '../../../plugin/ports/lockstep-error.js';
import {
  AT_LEAST_LOCAL_COMMIT,
  CONTROL_QUERY_TIMEOUT_MS,
  clientConfig,
  scrubbedError,
} from '../connection/connection-url.js';
import { boundControlSession } from '../connection/session-bounds.js';
import { controlDbOn } from './control-schema.js';
import type { ControlDb } from './lockstep-schema.js';

/**
 * The one statement that records a decision: a fence CTE reads the stream's
 * row under a share lock when fenced (`epoch` not null) and the insert runs
 * only when the epoch still matches; the gid is the primary key, so a second
 * writer's row (commit vs abort) is never inserted. `fenced`: refused.
 */
function decideStatement(
  db: ControlDb,
  stream: string,
  record: DecisionRecord,
  decision: Decision,
  epoch: string | null,
) {
  const unfenced = sql<boolean>`${epoch}::bigint IS NULL`;
  const fenceHolds = sql<boolean>`EXISTS (SELECT 1 FROM fence)`;
  return db
    .with('fence', (db) =>
      db
        .selectFrom('lockstep.streams')
        .select('epoch')
        .where('stream', '=', stream)
        .where((eb) => eb.or([unfenced, eb('epoch', '=', sql<string>`${epoch}::bigint`)]))
        .forShare(),
    )
    .with('inserted', (db) =>
      db
        .insertInto('lockstep.decisions')
        .columns([
          'gid',
          'stream',
          'round',
          'version_from',
          'version_to',
          'decision',
          'participants',
          'epoch',
        ])
        .expression(
          db
            .selectNoFrom((eb) => [
              eb.val(record.gid).as('gid'),
              eb.val(stream).as('stream'),
              eb.val(String(record.round)).as('round'),
              eb.val(String(record.versionFrom)).as('version_from'),
              eb.val(String(record.versionTo)).as('version_to'),
              eb.val(decision).as('decision'),
              eb.val(record.participants).as('participants'),
              eb.val(epoch).as('epoch'),
            ])
            .where((eb) => eb.or([unfenced, fenceHolds])),
        )
        .onConflict((oc) => oc.column('gid').doNothing())
        .returning('decision'),
    )
    .selectNoFrom((eb) => [
      eb.selectFrom('inserted').select('decision').as('decision'),
      sql<boolean>`${epoch}::bigint IS NOT NULL AND NOT ${fenceHolds}`.as('fenced'),
    ]);
}

/**
 * The durable decision log on the primary (`lockstep.decisions`). Committing a
 * `commit` row is a round's commit point. Both writers — the coordinator
 * deciding commit, a recoverer deciding abort — insert with the gid as primary
 * key, so whichever commits first wins and the other reads the winner back.
 *
 * Fenced (with `epoch`): a row is written only while the stream's epoch is
 * still the writer's, read under a share lock in the same statement — a
 * process that takes the coordinator lock raises the epoch with an UPDATE that
 * waits for that lock, so a deposed writer's decision either committed before
 * the takeover (and its successor's recovery sees it) or is refused.
 * Durability is forced: `synchronous_commit` is at least `local` whatever the
 * server's default, as the commit point must survive a crash of the primary.
 * The session is a bounded control session: the share lock on the stream's
 * row (held by a frozen `lockstep pause`, say) is waited for a margin short of
 * the query deadline and then fails with its own SQLSTATE (55P03), before
 * the client gives up; from PostgreSQL 14 a backend whose client gave up for
 * another reason ends too (before that it may still write: the gid key and
 * the epoch fence keep that write harmless).
 */
export class DecisionLog implements DecisionStore {
  private readonly pool: pg.Pool;
  /** Sessions whose synchronous_commit was raised and whose waits are bounded. */
  private readonly durable = new WeakSet<pg.PoolClient>();

  constructor(
    private readonly url: string,
    private readonly stream: string,
    /** The writer's activation epoch; omitted: unfenced (a migration, guarded by the migrate lock). */
    private readonly epoch?: () => number | null,
    private readonly queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
  ) {
    // Always the primary's: an error no step wrapped still names it.
    this.pool = new pg.Pool({
      ...clientConfig(url, 'lockstep-decisions', queryTimeoutMs, 'primary'),
      max: 1,
    });
    this.pool.on('error', () => undefined);
    // A session that ends while checked out reports it as an 'error' event: never a crash.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /**
   * Records `decision` for a gid unless one is recorded already, and returns
   * the decision that holds. Durable on return. Throws {@link DeposedError}
   * when fenced out: nothing was written.
   */
  async decide(record: DecisionRecord, decision: Decision): Promise<Decision> {
    const epoch = this.epoch ? this.epoch() : undefined;
    if (epoch === null) throw new DeposedError(null);
    const fence = epoch === undefined ? null : String(epoch);
    const row = await this.onSession((db) =>
      decideStatement(db, this.stream, record, decision, fence).executeTakeFirst(),
    );
    if (row?.fenced) throw new DeposedError(epoch ?? null);
    // Not inserted: a decision was there already (or a concurrent writer committed after this statement's snapshot).
    const held = row?.decision ?? (await this.read([record.gid])).get(record.gid);
    if (!held) throw new Error(`no decision could be read back for ${record.gid}`);
    return held;
  }

  /** The decisions recorded for some gids. */
  async read(gids: readonly string[]): Promise<Map<string, Decision>> {
    if (gids.length === 0) return new Map();
    const rows = await this.onSession((db) =>
      db
        .selectFrom('lockstep.decisions')
        .select(['gid', 'decision'])
        .where((eb) => eb('gid', '=', eb.fn.any(sql<string[]>`${[...gids]}::text[]`)))
        .execute(),
    );
    return new Map(rows.map((r) => [r.gid, r.decision]));
  }

  /** The highest round number the stream has used (0 when none). */
  async lastRound(): Promise<number> {
    const row = await this.onSession((db) =>
      db
        .selectFrom('lockstep.decisions')
        .select((eb) => eb.cast<string | null>(eb.fn.max('round'), 'text').as('round'))
        .where('stream', '=', this.stream)
        .executeTakeFirst(),
    );
    return Number(row?.round ?? 0);
  }

  /**
   * Forgets decisions older than `olderThanSeconds` whose gids are prepared
   * nowhere (nothing can ask about them any more); keeps the newest row, which
   * carries the round counter. A commit is forgotten only when every one of its
   * participants was listed: presumed abort would roll back a copy left on a
   * node the pass did not look at (a removed replica, the primary's migration
   * part in a replicas-only pass). An abort is what a missing row means anyway.
   */
  async prune(listed: ListedPrepared, olderThanSeconds: number): Promise<number> {
    const result = await this.onSession((db) =>
      db
        .deleteFrom('lockstep.decisions')
        .where('stream', '=', this.stream)
        .where('decided_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`)
        .where('gid', '<>', sql<string>`ALL(${[...listed.gids]}::text[])`)
        .where(sql<boolean>`(decision = 'abort' OR participants <@ ${[...listed.nodes]}::text[])`)
        .where((eb) =>
          eb(
            'round',
            '<',
            eb
              .selectFrom('lockstep.decisions')
              .select((eb) => eb.fn.max('round').as('last'))
              .where('stream', '=', this.stream),
          ),
        )
        .executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  /** Runs `work` on the log's one session, durable first; a failed session is not reused. */
  private async onSession<T>(work: (db: ControlDb) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw scrubbedError(error, this.url);
    }
    try {
      // Fails closed: a session whose durability or bounds could not be set is never used.
      if (!this.durable.has(client)) {
        await client.query(AT_LEAST_LOCAL_COMMIT);
        await boundControlSession(client, this.queryTimeoutMs);
        this.durable.add(client);
      }
      const result = await work(controlDbOn(client));
      client.release();
      return result;
    } catch (error) {
      // A failed session (cut, timed out) does not go back to the pool.
      client.release(error as Error);
      throw scrubbedError(error, this.url);
    }
  }
}
