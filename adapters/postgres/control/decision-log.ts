import pg from 'pg';
import { DeposedError } from '../../../plugin/ports/lockstep-error.js';
import {
  AT_LEAST_LOCAL_COMMIT,
  CONTROL_QUERY_TIMEOUT_MS,
  clientConfig,
  scrubbedError,
} from '../connection/connection-url.js';

/** A decision as the log holds it. */
export type Decision = 'commit' | 'abort';

/** What a round's decision row records besides the decision. */
export interface DecisionRecord {
  readonly gid: string;
  readonly round: number;
  readonly versionFrom: number;
  readonly versionTo: number;
  readonly participants: readonly string[];
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
 */
export class DecisionLog {
  private readonly pool: pg.Pool;
  /** Sessions whose synchronous_commit was raised. */
  private readonly durable = new WeakSet<pg.PoolClient>();

  constructor(
    private readonly url: string,
    private readonly stream: string,
    /** The writer's activation epoch; omitted: unfenced (a migration, guarded by the migrate lock). */
    private readonly epoch?: () => number | null,
  ) {
    this.pool = new pg.Pool({
      ...clientConfig(url, 'lockstep-decisions', CONTROL_QUERY_TIMEOUT_MS),
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
    const { rows } = await this.query<{ decision: Decision | null; fenced: boolean }>(
      `WITH fence AS (
         SELECT epoch FROM lockstep.streams
          WHERE stream = $2 AND ($8::bigint IS NULL OR epoch = $8::bigint) FOR SHARE),
       inserted AS (
         INSERT INTO lockstep.decisions (gid, stream, round, version_from, version_to, decision, participants, epoch)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE $8::bigint IS NULL OR EXISTS (SELECT 1 FROM fence)
         ON CONFLICT (gid) DO NOTHING
         RETURNING decision)
       SELECT (SELECT decision FROM inserted) AS decision,
              $8::bigint IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fence) AS fenced`,
      [
        record.gid,
        this.stream,
        String(record.round),
        String(record.versionFrom),
        String(record.versionTo),
        decision,
        record.participants,
        epoch === undefined ? null : String(epoch),
      ],
    );
    if (rows[0]?.fenced) throw new DeposedError(epoch ?? null);
    // Not inserted: a decision was there already (or a concurrent writer committed after this statement's snapshot).
    const held = rows[0]?.decision ?? (await this.read([record.gid])).get(record.gid);
    if (!held) throw new Error(`no decision could be read back for ${record.gid}`);
    return held;
  }

  /** The decisions recorded for some gids. */
  async read(gids: readonly string[]): Promise<Map<string, Decision>> {
    if (gids.length === 0) return new Map();
    const { rows } = await this.query<{ gid: string; decision: Decision }>(
      'SELECT gid, decision FROM lockstep.decisions WHERE gid = ANY($1::text[])',
      [gids],
    );
    return new Map(rows.map((r) => [r.gid, r.decision]));
  }

  /** The highest round number the stream has used (0 when none). */
  async lastRound(): Promise<number> {
    const { rows } = await this.query<{ round: string | null }>(
      'SELECT max(round)::text AS round FROM lockstep.decisions WHERE stream = $1',
      [this.stream],
    );
    return Number(rows[0]?.round ?? 0);
  }

  /**
   * Forgets decisions older than `olderThanSeconds` whose gids are prepared
   * nowhere (nothing can ask about them any more); keeps the newest row, which
   * carries the round counter.
   */
  async prune(stillPrepared: readonly string[], olderThanSeconds: number): Promise<number> {
    const { rowCount } = await this.query(
      `DELETE FROM lockstep.decisions
        WHERE stream = $1 AND decided_at < now() - make_interval(secs => $2)
          AND gid <> ALL($3::text[])
          AND round < (SELECT max(round) FROM lockstep.decisions WHERE stream = $1)`,
      [this.stream, olderThanSeconds, stillPrepared],
    );
    return rowCount ?? 0;
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  private async query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw scrubbedError(error, this.url);
    }
    try {
      // Fails closed: a session whose durability could not be raised is never used.
      if (!this.durable.has(client)) {
        await client.query(AT_LEAST_LOCAL_COMMIT);
        this.durable.add(client);
      }
      const result = await client.query<R>(text, values);
      client.release();
      return result;
    } catch (error) {
      // A failed session (cut, timed out) does not go back to the pool.
      client.release(error as Error);
      throw scrubbedError(error, this.url);
    }
  }
}
