import { sql } from 'kysely';
import pg from 'pg';
import type { SlotHealth } from '../../../plugin/ports/slot-health.js';
import type { TwoPhaseStatus } from '../../../plugin/ports/two-phase-status.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { CONTROL_QUERY_TIMEOUT_MS, clientConfig } from '../connection/connection-url.js';
import { isLockNotAvailable } from '../connection/lock-wait.js';
import { boundControlSession, controlLockWaitMs } from '../connection/session-bounds.js';
import { readSlotHealth } from '../source/replication-slot.js';
import { controlDbOn } from './control-schema.js';
import { joinHoldLsns } from './join-holds.js';
import type { ControlDb } from './lockstep-schema.js';
import { PgReplicaStatusStore } from './replica-status-store.js';
import { readPause } from './stream-pause.js';

/** How long a periodic status write waits for a row another session holds (the stream's, a replica's). */
const STATUS_ROW_WAIT_MS = 250;
/** This transaction's commit waits for the local flush where the server's default is `off`; never lowered. */
const AT_LEAST_LOCAL_COMMIT_HERE = `SELECT set_config('synchronous_commit', 'local', true)
  WHERE current_setting('synchronous_commit') = 'off'`;

/** What the sidecar records about one replica. */
export interface ReplicaStatusRow {
  readonly replica: string;
  readonly state: string;
  readonly version: number | null;
  readonly lsn: Lsn | null;
  readonly error: string | null;
  /** The database its agent is connected to; null until it connected (never kept from before). */
  readonly databaseId: string | null;
}

/** What the sidecar records about the stream. */
export interface StreamStatusRow {
  readonly version: number;
  readonly lsn: Lsn | null;
  readonly commitTime: string | null;
  /** Two-phase rounds: counts and the round the stream is held at, if any. */
  readonly twoPhase?: TwoPhaseStatus;
}

/**
 * The sidecar's notes on the primary (`lockstep.replica_status`,
 * `lockstep.streams`), so `status` can tell state and errors without it, and a
 * restarted sidecar knows where an unreachable replica last was.
 */
export class StatusStore {
  private readonly pool: pg.Pool;
  /** Sessions of the pool whose bounds are set. */
  private readonly bounded = new WeakSet<pg.PoolClient>();

  constructor(
    url: string,
    private readonly stream: string,
    private readonly queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
  ) {
    // Always the primary's: an error no step wrapped still names it.
    this.pool = new pg.Pool({
      ...clientConfig(url, 'lockstep-status', queryTimeoutMs, 'primary'),
      max: 1,
    });
    this.pool.on('error', () => undefined);
    // A session that ends while checked out reports it as an 'error' event: never a crash.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /**
   * A session of the pool, bounded on first use (session-bounds.ts): a frozen
   * sidecar never keeps the stream row locked. A session the bounds fail on is
   * not used (fail closed).
   */
  private async checkout(): Promise<pg.PoolClient> {
    const client = await this.pool.connect();
    if (this.bounded.has(client)) return client;
    try {
      await boundControlSession(client, this.queryTimeoutMs);
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    this.bounded.add(client);
    return client;
  }

  /** Typed queries on the pool's session; a session that failed (cut, timed out) is not reused. */
  private async onSession<T>(work: (db: ControlDb) => Promise<T>): Promise<T> {
    const client = await this.checkout();
    try {
      const result = await work(controlDbOn(client));
      client.release();
      return result;
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
  }

  /** Last recorded position of every replica. */
  async lastPositions(): Promise<Map<string, { version: number; lsn: Lsn }>> {
    const rows = await this.onSession((db) =>
      db
        .selectFrom('lockstep.replica_status')
        .select(['replica', 'version', sql<Lsn>`lsn::text`.as('lsn')])
        .where('stream', '=', this.stream)
        .where('lsn', 'is not', null)
        .execute(),
    );
    return new Map(rows.map((r) => [r.replica, { version: Number(r.version), lsn: r.lsn }]));
  }

  /**
   * Records replicas' states and the stream's head in one transaction. `durable`:
   * the commit is flushed before this returns (the bus publisher confirms the
   * slot only after its head is recorded, and the slot's own state may reach
   * disk before an asynchronous commit does).
   */
  async write(
    replicas: readonly ReplicaStatusRow[],
    stream: StreamStatusRow,
    { durable = false }: { durable?: boolean } = {},
  ): Promise<void> {
    const client = await this.checkout();
    try {
      await client.query('BEGIN');
      // Otherwise these rows are lockstep's own bookkeeping: no need to wait for the primary's fsync.
      await client.query(
        durable ? AT_LEAST_LOCAL_COMMIT_HERE : 'SET LOCAL synchronous_commit = off',
      );
      // A periodic write is made again soon: a held stream row is not waited for long. A
      // waiting UPDATE holds the row's tuple lock, and a round's decision (FOR SHARE) would
      // queue behind it, its own lock wait starting only after this one's ends. A durable
      // head (the bus publisher confirms the slot after it) keeps the session's wait.
      if (!durable) {
        const wait = Math.min(STATUS_ROW_WAIT_MS, controlLockWaitMs(this.queryTimeoutMs));
        await client.query(`SET LOCAL lock_timeout = '${wait}ms'`);
      }
      const db = controlDbOn(client);
      for (const r of replicas) await upsertReplicaStatus(db, this.stream, r);
      // A head older than the recorded one (a deposed writer's: a lower version, or the same
      // packet at an earlier idle point) keeps the row's LSN with its version: resuming below
      // the slot's confirmed point would refuse to publish.
      const older = sql`(${stream.version} < version OR (${stream.version} = version AND lsn > ${stream.lsn}::pg_lsn))`;
      await db
        .updateTable('lockstep.streams')
        .set({
          version: sql`greatest(version, ${stream.version})`,
          lsn: sql`CASE WHEN ${older} THEN lsn ELSE coalesce(${stream.lsn}, lsn) END`,
          commit_time: sql`CASE WHEN ${older} THEN commit_time ELSE coalesce(${stream.commitTime}, commit_time) END`,
          two_phase: sql`coalesce(${stream.twoPhase ? JSON.stringify(stream.twoPhase) : null}::jsonb, two_phase)`,
          updated_at: sql`now()`,
        })
        .where('stream', '=', this.stream)
        .execute();
      await client.query('COMMIT');
      client.release();
    } catch (error) {
      const rolledBack = await client.query('ROLLBACK').then(
        () => true,
        () => false,
      );
      // A failed session (e.g. cut) must not go back to the pool; one whose lock wait ended does.
      if (rolledBack && isLockNotAvailable(error)) client.release();
      else client.release(error as Error);
      throw error;
    }
  }

  /** Since when the stream is paused (`lockstep pause`), or null while it runs. */
  async pausedSince(): Promise<Date | null> {
    return (await readPause(this.pool, this.stream)) ?? null;
  }

  /** Replicas marked stale and not resynced since (durable across restarts). */
  async joinHolds(): Promise<Lsn[]> {
    return joinHoldLsns(this.pool, this.stream);
  }

  async staleReplicas(): Promise<Set<string>> {
    return new Set(
      await this.onSession((db) => new PgReplicaStatusStore(db).staleReplicas(this.stream)),
    );
  }

  /** Marks a replica stale durably: it stays out of the resume point until a resync clears the mark. */
  async markStale(replica: string): Promise<void> {
    await this.onSession((db) => new PgReplicaStatusStore(db).markStale(this.stream, replica));
  }

  /** Forgets a replica removed from the configuration: its row (state, last position, stale mark) goes. */
  async forgetReplica(replica: string): Promise<void> {
    await this.onSession((db) =>
      db
        .deleteFrom('lockstep.replica_status')
        .where('stream', '=', this.stream)
        .where('replica', '=', replica)
        .execute(),
    );
  }

  /** Forgets every replica not in `configured` (removed while no sidecar ran); returns their names. */
  async forgetUnconfigured(configured: readonly string[]): Promise<string[]> {
    const rows = await this.onSession((db) =>
      db
        .deleteFrom('lockstep.replica_status')
        .where('stream', '=', this.stream)
        .where(sql<boolean>`replica <> ALL(${[...configured]}::text[])`)
        .returning('replica')
        .execute(),
    );
    return rows.map((r) => r.replica);
  }

  /** Records that `owner` (host:pid) is now the active sidecar. */
  async markActive(owner: string): Promise<void> {
    await this.onSession((db) =>
      db
        .updateTable('lockstep.streams')
        .set({ active_sidecar: owner, active_since: sql`now()` })
        .where('stream', '=', this.stream)
        .execute(),
    );
  }

  /** The primary's current WAL position (for lag in bytes). */
  async currentWalLsn(): Promise<Lsn> {
    const { rows } = await this.pool.query<{ lsn: Lsn }>(
      'SELECT pg_current_wal_lsn()::text AS lsn',
    );
    return (rows[0] as { lsn: Lsn }).lsn;
  }

  /** The slot's confirmed_flush_lsn. */
  async slotConfirmedLsn(): Promise<Lsn | null> {
    const { rows } = await this.pool.query<{ lsn: Lsn | null }>(
      'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots s JOIN lockstep.streams t ON t.slot = s.slot_name WHERE t.stream = $1',
      [this.stream],
    );
    return rows[0]?.lsn ?? null;
  }

  /** The stream's slot as pg_replication_slots shows it; null when the stream is not attached. */
  async slotHealth(): Promise<SlotHealth | null> {
    return readSlotHealth(this.pool, this.stream);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

/**
 * One replica's row: its state and database, its last position kept when the
 * sidecar no longer knows one, and `error_at` moved only when the error changes.
 */
async function upsertReplicaStatus(
  db: ControlDb,
  stream: string,
  r: ReplicaStatusRow,
): Promise<void> {
  await db
    .insertInto('lockstep.replica_status')
    .values({
      stream,
      replica: r.replica,
      state: r.state,
      version: r.version === null ? null : r.version,
      lsn: r.lsn,
      error: r.error,
      error_at: r.error === null ? null : sql`now()`,
      updated_at: sql`now()`,
      database_id: r.databaseId,
    })
    .onConflict((oc) =>
      oc.columns(['stream', 'replica']).doUpdateSet({
        state: (eb) => eb.ref('excluded.state'),
        database_id: (eb) => eb.ref('excluded.database_id'),
        version: sql`coalesce(excluded.version, lockstep.replica_status.version)`,
        lsn: sql`coalesce(excluded.lsn, lockstep.replica_status.lsn)`,
        error: (eb) => eb.ref('excluded.error'),
        error_at: sql`CASE WHEN excluded.error IS NULL THEN NULL
                           WHEN excluded.error IS DISTINCT FROM lockstep.replica_status.error THEN now()
                           ELSE lockstep.replica_status.error_at END`,
        updated_at: sql`now()`,
      }),
    )
    .execute();
}
