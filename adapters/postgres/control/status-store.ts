import pg from 'pg';
import type { SlotHealth } from '../../../plugin/ports/slot-health.js';
import type { TwoPhaseStatus } from '../../../plugin/ports/two-phase-status.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { CONTROL_QUERY_TIMEOUT_MS, clientConfig } from '../connection/connection-url.js';
import { readSlotHealth } from '../source/replication-slot.js';
import { joinHoldLsns } from './join-holds.js';
import { readPause } from './stream-pause.js';

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

  constructor(
    url: string,
    private readonly stream: string,
  ) {
    this.pool = new pg.Pool({
      ...clientConfig(url, 'lockstep-status', CONTROL_QUERY_TIMEOUT_MS),
      max: 1,
    });
    this.pool.on('error', () => undefined);
    // A session that ends while checked out reports it as an 'error' event: never a crash.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** Last recorded position of every replica. */
  async lastPositions(): Promise<Map<string, { version: number; lsn: Lsn }>> {
    const { rows } = await this.pool.query<{ replica: string; version: string; lsn: Lsn }>(
      'SELECT replica, version::text, lsn::text FROM lockstep.replica_status WHERE stream = $1 AND lsn IS NOT NULL',
      [this.stream],
    );
    return new Map(rows.map((r) => [r.replica, { version: Number(r.version), lsn: r.lsn }]));
  }

  /** Records replicas' states and the stream's head in one transaction. */
  async write(replicas: readonly ReplicaStatusRow[], stream: StreamStatusRow): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // These rows are lockstep's own bookkeeping: no need to wait for the primary's fsync.
      await client.query('SET LOCAL synchronous_commit = off');
      for (const r of replicas) {
        await client.query(
          `INSERT INTO lockstep.replica_status (stream, replica, state, version, lsn, error, error_at, updated_at, database_id)
           VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6::text IS NULL THEN NULL ELSE now() END, now(), $7)
           ON CONFLICT (stream, replica) DO UPDATE SET state = excluded.state,
             database_id = excluded.database_id,
             version = coalesce(excluded.version, lockstep.replica_status.version),
             lsn = coalesce(excluded.lsn, lockstep.replica_status.lsn),
             error = excluded.error,
             error_at = CASE WHEN excluded.error IS NULL THEN NULL
                             WHEN excluded.error IS DISTINCT FROM lockstep.replica_status.error THEN now()
                             ELSE lockstep.replica_status.error_at END,
             updated_at = now()`,
          [this.stream, r.replica, r.state, r.version, r.lsn, r.error, r.databaseId],
        );
      }
      await client.query(
        `UPDATE lockstep.streams SET version = greatest(version, $2), lsn = coalesce($3, lsn),
           commit_time = coalesce($4, commit_time), two_phase = coalesce($5, two_phase), updated_at = now()
         WHERE stream = $1`,
        [
          this.stream,
          stream.version,
          stream.lsn,
          stream.commitTime,
          stream.twoPhase ? JSON.stringify(stream.twoPhase) : null,
        ],
      );
      await client.query('COMMIT');
      client.release();
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A failed session (e.g. cut) must not go back to the pool.
      client.release(error as Error);
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
    const { rows } = await this.pool.query<{ replica: string }>(
      'SELECT replica FROM lockstep.replica_status WHERE stream = $1 AND stale_since IS NOT NULL',
      [this.stream],
    );
    return new Set(rows.map((r) => r.replica));
  }

  /** Marks a replica stale durably: it stays out of the resume point until a resync clears the mark. */
  async markStale(replica: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO lockstep.replica_status (stream, replica, state, stale_since) VALUES ($1, $2, 'stale', now())
       ON CONFLICT (stream, replica) DO UPDATE SET state = 'stale',
         stale_since = coalesce(lockstep.replica_status.stale_since, now()), updated_at = now()`,
      [this.stream, replica],
    );
  }

  /** Forgets a replica removed from the configuration: its row (state, last position, stale mark) goes. */
  async forgetReplica(replica: string): Promise<void> {
    await this.pool.query(
      'DELETE FROM lockstep.replica_status WHERE stream = $1 AND replica = $2',
      [this.stream, replica],
    );
  }

  /** Forgets every replica not in `configured` (removed while no sidecar ran); returns their names. */
  async forgetUnconfigured(configured: readonly string[]): Promise<string[]> {
    const { rows } = await this.pool.query<{ replica: string }>(
      `DELETE FROM lockstep.replica_status WHERE stream = $1 AND replica <> ALL($2::text[])
       RETURNING replica`,
      [this.stream, configured],
    );
    return rows.map((r) => r.replica);
  }

  /** Records that `owner` (host:pid) is now the active sidecar. */
  async markActive(owner: string): Promise<void> {
    await this.pool.query(
      'UPDATE lockstep.streams SET active_sidecar = $2, active_since = now() WHERE stream = $1',
      [this.stream, owner],
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
