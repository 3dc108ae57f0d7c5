import { sql } from 'kysely';
import type pg from 'pg';
import type {
  StreamLockHolder,
  StreamLockPurpose,
} from '../../../plugin/ports/stream-lock-holder.js';
import { AT_LEAST_LOCAL_COMMIT } from '../connection/connection-url.js';
import { advisoryLockHeld } from './advisory-lock-held.js';
import { AdvisoryLockSession } from './advisory-lock-session.js';
import { controlDbOn } from './control-schema.js';
import type { ControlDb } from './lockstep-schema.js';
import { migrationRoundInFlight } from './migrate-round-fence.js';

export type { StreamLockPurpose } from '../../../plugin/ports/stream-lock-holder.js';

/** Raises the stream's activation epoch by one; its new value (no row: not attached). */
function raiseEpoch(db: ControlDb, stream: string) {
  return db
    .updateTable('lockstep.streams')
    .set((eb) => ({ epoch: eb('epoch', '+', sql<string>`1`) }))
    .where('stream', '=', stream)
    .returning((eb) => eb.cast<string>('epoch', 'text').as('epoch'))
    .executeTakeFirst();
}

/**
 * A session advisory lock on the primary for one stream, held on a dedicated
 * connection; if its holder dies, the session ends and the lock is free.
 * `coordinator`: held by the active sidecar (or `lockstep recover`): only it
 * starts stream rounds or recovers them, so no recoverer touches a round in
 * flight and a second sidecar stands by. Taking it raises the stream's
 * activation epoch on the same session (see migrations/005-fencing.ts): what a
 * holder writes under its epoch is refused once another process took over.
 * `migrate`: held by a running `lockstep migrate`/`exec`; migration gids are
 * recovered only by whoever holds it.
 */
export class StreamLock implements StreamLockHolder {
  private readonly session: AdvisoryLockSession;
  /** The activation epoch this holder raised (coordinator lock), null before or when not attached. */
  epoch: number | null = null;

  constructor(
    url: string,
    private readonly stream: string,
    private readonly purpose: StreamLockPurpose = 'coordinator',
    queryTimeoutMs?: number,
  ) {
    this.session = new AdvisoryLockSession({
      node: 'primary',
      url,
      application: `lockstep-${purpose}`,
      kind: `lockstep.${purpose}`,
      name: stream,
      ...(queryTimeoutMs ? { queryTimeoutMs } : {}),
    });
  }

  /** Takes the lock if it is free; false when another process holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.purpose !== 'coordinator') return this.session.tryAcquire();
    return this.session.tryAcquire(async (client) => {
      // Raised on the lock's own session: waits for a deposed holder's fenced decision in
      // flight. Durable, or a crash of the primary could hand the next holder the same epoch.
      await client.query(AT_LEAST_LOCAL_COMMIT);
      const row = await raiseEpoch(controlDbOn(client), this.stream);
      // No row: the stream is not attached; the holder may clean up (detach) but not decide.
      this.epoch = row ? Number(row.epoch) : null;
    });
  }

  /** Whether this process still holds the lock (its session is alive). */
  get held(): boolean {
    return this.session.held;
  }

  /** Calls `listener` once the lock is lost while held (its session ended, or {@link verify} failed). */
  onLost(listener: () => void): void {
    this.session.onLost(listener);
  }

  /**
   * Asks the lock's session whether it still holds the lock and the epoch is
   * still its own. A session that does not answer within a few seconds is
   * dropped: the lock counts as lost (fail closed), never as held.
   */
  verify(): Promise<boolean> {
    const epoch = this.epoch;
    if (this.purpose !== 'coordinator' || epoch === null) return this.session.verify();
    return this.session.verify(async (client) => {
      const { rows } = await client.query<{ epoch: string | null }>(
        'SELECT epoch::text FROM lockstep.streams WHERE stream = $1',
        [this.stream],
      );
      return Number(rows[0]?.epoch) === epoch;
    });
  }

  /** The backend pid of the lock's session while held: what a migration's fence proves (null otherwise). */
  get holderPid(): number | null {
    return this.session.pid;
  }

  /**
   * Migrate lock, held: whether a migration's primary transaction is still
   * in flight (one whose lock was lost, running its last steps or prepared).
   */
  migrationInFlight(): Promise<boolean> {
    return this.session.onSession((client) => migrationRoundInFlight(client, this.stream));
  }

  /** Releases the lock (if held) by ending its session. */
  async release(): Promise<void> {
    this.epoch = null;
    await this.session.release();
  }
}

/** Whether some session on the primary holds `stream`'s lock of `purpose` now (read by `status`). */
export async function streamLockHeld(
  client: pg.ClientBase,
  stream: string,
  purpose: StreamLockPurpose = 'coordinator',
): Promise<boolean> {
  return advisoryLockHeld(client, `lockstep.${purpose}`, stream, 'any-session');
}
