import type { Kysely } from 'kysely';
import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type {
  MigrationConnection,
  MigrationHistoryEntry,
  MigrationNodeSession,
  MigrationPrepare,
  ReplicaMigrationHistory,
} from '../../../plugin/ports/migration-session.js';
import {
  BARRIER_MESSAGE,
  CONTROL_EVENTS_TABLE,
  checkedGid,
  encodeMigrationWork,
  type Lsn,
  type MigrationWork,
  type TablePattern,
} from '../../../plugin/protocol/index.js';
import { scrubSecrets } from '../connection/connection-url.js';
import { explainIdleEnd, watchIdleEnd } from '../connection/idle-end.js';
import { LOCK_NOT_AVAILABLE } from '../connection/lock-wait.js';
import {
  connectBounded,
  connectNode,
  dropClient,
  endClient,
  lockWaitWithin,
} from '../connection/node-connection.js';
import { boundIdleInTransaction, IDLE_IN_TRANSACTION_ENDED } from '../connection/session-bounds.js';
import { SessionKeepalive } from '../connection/session-keepalive.js';
import { MIGRATING_SETTING, recordControlEvent } from '../setup/ddl-capture.js';
import { readCatalog, selectReplicated } from '../setup/table-catalog.js';
import { ensurePublication } from '../source/replication-slot.js';
import { controlDbOn } from './control-schema.js';
import type { ControlSession } from './lockstep-schema.js';
import { fenceMigrationRound } from './migrate-round-fence.js';
import { MigrationHistory, readCopiedAt, recordMigrationGid } from './migration-history.js';
import {
  existingTables,
  lockTouched,
  requireTouchedLocked,
  tablesTouchedBy,
} from './migration-write-lock.js';

/** A Kysely instance over the migration's own connection (for Kysely migration modules). */
// biome-ignore lint/suspicious/noExplicitAny: migrations bring their own database types
export function kyselyOn(connection: ControlSession): Kysely<any> {
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return controlDbOn(connection) as unknown as Kysely<any>;
}

/** The migration's session as its steps see it: its queries, and Kysely over the same session. */
function migrationConnection(client: pg.Client): MigrationConnection {
  return {
    query: (text, values) => client.query(text, values),
    kysely: () => kyselyOn(client),
  };
}

/** Brings the publication up to date when the migration changed what it should publish. */
async function updatePublication(
  client: pg.Client,
  publication: NonNullable<MigrationPrepare['publication']>,
): Promise<void> {
  const tables = selectReplicated(await readCatalog(client), publication.patterns);
  // Only when the migration changed what is published: SET TABLE locks every published table.
  const { rows: published } = await client.query<{ t: string }>(
    `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1`,
    [publication.name],
  );
  const have = new Set(published.map((r) => r.t));
  have.delete(`${CONTROL_EVENTS_TABLE.schema}.${CONTROL_EVENTS_TABLE.name}`);
  const changed =
    tables.length !== have.size || tables.some((t) => !have.has(`${t.schema}.${t.name}`));
  if (changed && (tables.length > 0 || publication.schemas.length > 0)) {
    await ensurePublication(client, publication.name, tables, publication.schemas);
  }
}

/** Records the replicated tables the migration created as in step: it ran on every node. */
async function adoptCreatedTables(
  client: pg.Client,
  stream: string,
  patterns: readonly TablePattern[],
  before: ReadonlySet<string> | null,
): Promise<void> {
  const created = selectReplicated(await readCatalog(client), patterns).filter(
    (t) => !before?.has(`${t.schema}.${t.name}`),
  );
  for (const t of created) {
    await client.query(
      `INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
       VALUES ($1, $2, $3, '0/0', 0) ON CONFLICT DO NOTHING`,
      [stream, t.schema, t.name],
    );
  }
}

/**
 * One node's side of a migration round: runs the migration in a transaction
 * (with `lock_timeout`, and on the primary a transactional marker first) and
 * ends it with PREPARE TRANSACTION; phase two is the prepared-transactions
 * adapter's. Also reads the node's stream position, and on the primary
 * commits the barrier every replica must reach before it prepares.
 *
 * Until it is prepared the transaction holds the tables it locked (ACCESS
 * EXCLUSIVE for DDL) on its session: the server ends it once idle for the
 * same `lockTimeoutMs` (twoPhase.voteTimeoutMs) the migration waits for the
 * application's locks, and while this process runs a keepalive keeps it.
 * So a frozen `migrate` or agent (SIGSTOP, Ctrl-Z, a paused VM) keeps the
 * application out of a table no longer than that; what it had not prepared
 * is gone, what it had is settled by recovery (presumed abort).
 */
export class MigrationSession implements MigrationNodeSession {
  constructor(
    readonly node: string,
    private readonly url: string,
    private readonly stream: string,
    /**
     * A deadline (ms) for each query of the history read (`migrate status`),
     * of the stream position read and of the barrier: a node that stops
     * answering fails them then. Migrations themselves have none: one may
     * legitimately run long.
     */
    private readonly readTimeoutMs?: number,
    /**
     * On the primary, for `migrate`/`exec`: the migrate lock the round runs
     * under, proved still held inside the transaction before PREPARE.
     */
    private readonly migrateLock?: { readonly holderPid: number | null },
    /** Tests: called once the barrier's session is connected, before its statements (fault point). */
    private readonly barrierSessionOpen?: () => void,
  ) {}

  /** Runs `step` and the history change in one transaction, then PREPARE TRANSACTION `gid`. */
  async prepare(options: MigrationPrepare): Promise<void> {
    const prepare = `PREPARE TRANSACTION '${checkedGid(options.gid)}'`;
    const client = await this.connect();
    const connection = migrationConnection(client);
    const keepalive = new SessionKeepalive(options.lockTimeoutMs / 3);
    watchIdleEnd(client);
    const begin = async () => {
      await client.query(`SET LOCAL lock_timeout = ${Math.floor(options.lockTimeoutMs)}`);
      // Captured DDL skips it: this migration reaches the replicas through its own round.
      if (options.marker)
        await client.query(`SELECT set_config('${MIGRATING_SETTING}', 'on', true)`);
    };
    try {
      await boundIdleInTransaction(client, options.lockTimeoutMs);
      keepalive.start(client, () => true);
      // On the primary, writers are kept out of what the migration writes (migration-write-lock.ts).
      const touched = options.marker
        ? await tablesTouchedBy(client, begin, () => options.step(connection))
        : { writes: [], reads: [] };
      await client.query('BEGIN');
      await begin();
      await lockTouched(client, touched);
      const existed = options.marker ? await existingTables(client) : null;
      if (options.marker) await recordControlEvent(client, 'migration', options.gid);
      const before = options.adoptTables
        ? new Set((await readCatalog(client)).map((t) => `${t.schema}.${t.name}`))
        : null;
      await options.step(connection);
      if (existed) await requireTouchedLocked(client, touched, existed);
      if (options.publication) await updatePublication(client, options.publication);
      if (options.adoptTables)
        await adoptCreatedTables(client, this.stream, options.adoptTables, before);
      if (options.history)
        await new MigrationHistory(controlDbOn(client)).record(this.stream, options.history);
      await recordMigrationGid(client, this.stream, options.gid);
      if (this.migrateLock)
        await fenceMigrationRound(client, this.stream, this.migrateLock.holderPid);
      await client.query(prepare);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.explain(explainIdleEnd(client, error));
    } finally {
      keepalive.stop();
      await client.end().catch(() => undefined);
    }
  }

  /** The commit LSN of the last packet this replica applied (null when not attached). */
  async appliedLsn(): Promise<Lsn | null> {
    const { rows } = await this.once<{ lsn: Lsn }>(
      'SELECT lsn::text AS lsn FROM lockstep.applied WHERE stream = $1',
      [this.stream],
    );
    return rows[0]?.lsn ?? null;
  }

  /**
   * On the primary: commits a barrier message after the migration prepared and
   * returns its LSN. Every replica that has applied it has everything that
   * committed on the primary before the migration's prepare.
   */
  async commitBarrier(gid: string, work?: MigrationWork): Promise<Lsn> {
    const client = await this.connectRead();
    this.barrierSessionOpen?.();
    let dropped = false;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ lsn: Lsn }>(
        'SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn',
        [BARRIER_MESSAGE, gid],
      );
      if (work) await recordControlEvent(client, 'migration-work', encodeMigrationWork(work));
      await client.query('COMMIT');
      return (rows[0] as { lsn: Lsn }).lsn;
    } catch (error) {
      // Bounded, the session is dropped, not waited on (a frozen host). Its backend ends and rolls
      // back, or, in a COMMIT waiting for a synchronous standby, commits the barrier once released:
      // harmless, nothing decides the gid and agents run only work they are asked to prepare.
      dropped = Boolean(this.readTimeoutMs);
      if (dropped) dropClient(client);
      else await client.query('ROLLBACK').catch(() => undefined);
      throw this.explain(error);
    } finally {
      if (!dropped) await this.endRead(client);
    }
  }

  /** The names and checksums in this node's history, in order. */
  history(): Promise<MigrationHistoryEntry[]> {
    return this.reading((client) => new MigrationHistory(controlDbOn(client)).list());
  }

  /** A replica's history and when its current copy of `stream` began, in one session. */
  replicaHistory(stream: string): Promise<ReplicaMigrationHistory> {
    return this.reading(async (client) => ({
      history: await new MigrationHistory(controlDbOn(client)).list(),
      copiedAt: await readCopiedAt(client, stream),
    }));
  }

  private async reading<R>(read: (client: pg.Client) => Promise<R>): Promise<R> {
    const client = await this.connectRead('lockstep-migrate-status');
    try {
      return await read(client);
    } catch (error) {
      throw this.explain(error);
    } finally {
      await this.endRead(client);
    }
  }

  private async once<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const client = await this.connectRead();
    try {
      return await client.query<R>(text, values);
    } catch (error) {
      throw this.explain(error);
    } finally {
      await this.endRead(client);
    }
  }

  /** A session for short statements: with readTimeoutMs, bounded (and a lock wait ends a margin before it, so a busy node is not called frozen). */
  private connectRead(applicationName = 'lockstep-migrate-session'): Promise<pg.Client> {
    const deadlineMs = this.readTimeoutMs;
    if (!deadlineMs) return this.connect();
    return connectBounded(
      this.node,
      this.url,
      applicationName,
      deadlineMs,
      lockWaitWithin(deadlineMs),
    );
  }

  /** A bounded session's close never waits on a frozen host. */
  private async endRead(client: pg.Client): Promise<void> {
    if (this.readTimeoutMs) await endClient(client);
    else await client.end().catch(() => undefined);
  }

  private connect(): Promise<pg.Client> {
    return connectNode(this.node, this.url, 'lockstep-migrate-session');
  }

  /** The Postgres error, with its detail and SQLSTATE, naming the node and never the password. */
  private explain(error: unknown): LockstepError {
    if (error instanceof LockstepError) return error;
    const e = error as { message?: string; detail?: string; code?: string };
    const text = scrubSecrets(
      `${e.message ?? String(error)}${e.detail ? ` (${e.detail})` : ''}${e.code ? ` [${e.code}]` : ''}`,
      this.url,
    );
    return new LockstepError({
      node: this.node,
      problem: text,
      sqlState: e.code,
      fix:
        e.code === LOCK_NOT_AVAILABLE
          ? 'a lock was not granted within lock_timeout (twoPhase.voteTimeoutMs): retry when the table is less busy'
          : e.code === IDLE_IN_TRANSACTION_ENDED
            ? 'this process stalled (stopped, or a paused VM) longer than twoPhase.voteTimeoutMs inside the migration, so the server ended it: run it again, nothing was committed anywhere'
            : `fix the cause on ${this.node} (or the migration) and run it again: nothing was committed anywhere`,
      cause: error,
    });
  }
}
