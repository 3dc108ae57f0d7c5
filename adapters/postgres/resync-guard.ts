import type pg from 'pg';
import { LockstepError } from '../../plugin/lockstep-error.js';
import { CONTROL_QUERY_TIMEOUT_MS } from './connection-url.js';
import { connectNode, endClient } from './node-connection.js';

/**
 * A session advisory lock on one replica, held for the whole of its resync
 * (emptying, copying, clearing the stale mark): two resyncs of one replica —
 * a deposed sidecar's and its successor's, or two `attach --resync` — never
 * interleave, so one's copy never lands on top of the other's or after the
 * other's reset. Never waited for: a busy guard is an error the caller retries.
 */
export class ResyncGuard {
  private lost = false;

  private constructor(
    private readonly replica: string,
    private readonly client: pg.Client,
  ) {
    client.on('end', () => {
      this.lost = true;
    });
  }

  /** Takes the guard of `replica` for `stream`; throws when another process holds it. */
  static async take(replica: string, url: string, stream: string): Promise<ResyncGuard> {
    const client = await connectNode(replica, url, 'lockstep-resync', CONTROL_QUERY_TIMEOUT_MS);
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock(hashtext('lockstep.resync'), hashtext($1)) AS locked",
        [stream],
      );
      if (rows[0]?.locked !== true) {
        throw new LockstepError({
          node: replica,
          problem: 'another lockstep process is resyncing this replica (it holds the resync lock)',
          fix: 'let it finish (lockstep status shows the replica as resyncing), then run this again if still needed',
        });
      }
    } catch (error) {
      await endClient(client);
      throw error;
    }
    return new ResyncGuard(replica, client);
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
