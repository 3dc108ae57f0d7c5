import type pg from 'pg';
import type { TableName } from '../../../plugin/ports/catalog-table.js';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type { ResyncGuardPort, StreamPosition } from '../../../plugin/ports/resync-guard.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../connection/connection-url.js';
import { namedLockWait } from '../connection/lock-wait.js';
import { connectBounded, endClient } from '../connection/node-connection.js';
import { controlLockWaitMs } from '../connection/session-bounds.js';
import { quoteQualified } from '../sql-identifier.js';
import { controlDbOn } from './control-schema.js';
import { PgPositionsStore } from './positions-store.js';
import { PgSyncedTablesStore } from './synced-tables-store.js';

/** The guard's advisory-lock key, as SQL over the stream name `$n`. */
const guardKey = (n: number) => `hashtext('lockstep.resync'), hashtext($${n})`;

/**
 * SQL that is true while the session `pid` (`$1`) holds the resync guard of
 * stream `$2`: a table copy checks it in its own transaction before it
 * commits, so a copy made after its guard died never lands.
 */
export const GUARD_HELD = `SELECT EXISTS (
  SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND granted AND objsubid = 2
     AND classid::int = hashtext('lockstep.resync') AND objid::int = hashtext($2)) AS held`;

/**
 * A session advisory lock on one replica, held for the whole of its resync
 * (emptying, copying, clearing the stale mark): two resyncs of one replica —
 * a deposed sidecar's and its successor's, or two `attach --resync` — never
 * interleave, so one's copy never lands on top of the other's or after the
 * other's reset. Never waited for: a busy guard is an error the caller retries.
 */
export class ResyncGuard implements ResyncGuardPort {
  private lost = false;
  /** The control tables, on the guard's own session. */
  private readonly positions: PgPositionsStore;
  private readonly copies: PgSyncedTablesStore;

  private constructor(
    readonly replica: string,
    private readonly client: pg.Client,
    /** The guard session's backend pid on the replica. */
    readonly pid: number,
  ) {
    client.on('end', () => {
      this.lost = true;
    });
    const db = controlDbOn(client);
    this.positions = new PgPositionsStore(db);
    this.copies = new PgSyncedTablesStore(db);
  }

  /** Takes the guard of `replica` for `stream`; throws when another process holds it. */
  static async take(
    replica: string,
    url: string,
    stream: string,
    queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
  ): Promise<ResyncGuard> {
    // Bounded: a lock wait (a TRUNCATE behind a long read, the position row behind a
    // prepared round) ends on the server, named, and a backend whose client gave up
    // ends too (PostgreSQL 14+) instead of emptying or unplacing the replica later.
    const client = await connectBounded(replica, url, 'lockstep-resync', queryTimeoutMs, {
      lock_timeout: `${controlLockWaitMs(queryTimeoutMs)}ms`,
      idle_in_transaction_session_timeout: '10s',
    });
    try {
      const { rows } = await client.query<{ locked: boolean; pid: number }>(
        `SELECT pg_try_advisory_lock(${guardKey(1)}) AS locked, pg_backend_pid() AS pid`,
        [stream],
      );
      if (rows[0]?.locked !== true) {
        throw new LockstepError({
          node: replica,
          problem: 'another lockstep process is resyncing this replica (it holds the resync lock)',
          fix: 'let it finish (lockstep status shows the replica as resyncing), then run this again if still needed',
        });
      }
      return new ResyncGuard(replica, client, rows[0].pid);
    } catch (error) {
      await endClient(client);
      throw error;
    }
  }

  /**
   * Empties the replica's replicated tables and positions it at `anchor` (or,
   * given null, takes its position away), in one transaction on the guard's
   * own session: a guard that died empties nothing.
   */
  async reset(stream: string, tables: readonly TableName[], anchor: StreamPosition | null) {
    this.check();
    await this.inTransaction('emptying the replica for its copy', async (client) => {
      if (tables.length)
        await client.query(
          `TRUNCATE ${tables.map((t) => quoteQualified(t.schema, t.name)).join(', ')}`,
        );
      await this.copies.forget(stream);
      if (anchor) await this.positions.reset(stream, anchor);
      else await this.positions.forget(stream);
    });
  }

  /**
   * A replica joining the stream: empties the tables an earlier, interrupted
   * join copied (their copies are from an older snapshot than the new
   * starting point) and forgets them, in one transaction on the guard's session.
   */
  async clearCopies(stream: string): Promise<void> {
    this.check();
    await this.inTransaction('emptying tables an interrupted join copied', async (client) => {
      // Quoted by format('%I.%I') in the store.
      const copied = await this.copies.existingCopies(stream);
      if (copied.length > 0) await client.query(`TRUNCATE ${copied.join(', ')}`);
      await this.copies.forget(stream);
    });
  }

  /** A joining replica, copied: its position becomes `anchor` (it must have none yet). */
  async place(stream: string, anchor: StreamPosition): Promise<void> {
    this.check();
    const placed = await this.positions.place(stream, anchor).catch((error: unknown) => {
      throw this.named('placing it in the stream', error);
    });
    if (placed !== 1)
      throw new LockstepError({
        node: this.replica,
        problem: 'the replica got a position in the stream while it was being copied',
        fix: 'check that no other lockstep attach ran on it; lockstep status shows where it is',
      });
  }

  /** Takes a placed replica's position back (its starting point turned out unusable): it is not attached again. */
  async unplace(stream: string): Promise<void> {
    this.check();
    try {
      await this.positions.forget(stream);
    } catch (error) {
      throw this.named('taking its position back', error);
    }
  }

  private async inTransaction(
    step: string,
    work: (client: pg.Client) => Promise<void>,
  ): Promise<void> {
    const client = this.client;
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL session_replication_role = replica');
      await work(client);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.named(step, error);
    }
  }

  /** A lock wait the server ended, named with the replica, the step and who to look for. */
  private named(step: string, error: unknown): unknown {
    return namedLockWait(
      this.replica,
      step,
      error,
      'find the session on the replica that holds the lock (pg_locks joined with pg_stat_activity: a long transaction on a replicated table, or a transaction left prepared: lockstep recover), let it finish or end it, then run lockstep attach again',
    );
  }

  /** Throws when the guard's session ended meanwhile: what ran since was not guarded. */
  check(): void {
    if (this.lost) {
      throw new LockstepError({
        node: this.replica,
        problem: 'the resync lock was lost during the resync (its session ended)',
        fix: 'the resync is repeated from the start; check the replica if this recurs',
      });
    }
  }

  async release(): Promise<void> {
    await endClient(this.client);
  }
}
