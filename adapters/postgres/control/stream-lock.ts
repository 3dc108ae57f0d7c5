import { sql } from 'kysely';
import type pg from 'pg';
import type {
  StreamLockHolder,
  StreamLockPurpose,
} from '../../../plugin/ports/stream-lock-holder.js';
import {
  AT_LEAST_LOCAL_COMMIT,
  CONTROL_QUERY_TIMEOUT_MS,
  scrubbedError,
} from '../connection/connection-url.js';
import { connectNode, dropClient, endClient } from '../connection/node-connection.js';
import { controlDbOn } from './control-schema.js';
import type { ControlDb } from './lockstep-schema.js';

export type { StreamLockPurpose } from '../../../plugin/ports/stream-lock-holder.js';

/** The two advisory-lock keys of a stream's lock (purpose, stream); the one place they are derived. */
const [PURPOSE_KEY, STREAM_KEY] = ['hashtext($2)', 'hashtext($1)'];
const keyValues = (stream: string, purpose: StreamLockPurpose) => [stream, `lockstep.${purpose}`];

/** Raises the stream's activation epoch by one; its new value (no row: not attached). */
function raiseEpoch(db: ControlDb, stream: string) {
  return db
    .updateTable('lockstep.streams')
    .set((eb) => ({ epoch: eb('epoch', '+', sql<string>`1`) }))
    .where('stream', '=', stream)
    .returning((eb) => eb.cast<string>('epoch', 'text').as('epoch'))
    .executeTakeFirst();
}

/** How long a check of the lock session may take before the lock counts as lost. */
const VERIFY_TIMEOUT_MS = 5_000;

/**
 * A session advisory lock on the primary for one stream, held on a dedicated
 * connection; if its holder dies, the session ends and the lock is free.
 * `coordinator`: held by the active sidecar (or `lockstep recover`): only it
 * starts stream rounds or recovers them, so no recoverer touches a round in
 * flight and a second sidecar stands by. Taking it raises the stream's
 * activation epoch on the same session (see migrations/005-fencing.ts): what a
 * holder writes under its epoch is refused once another process took over.
 * `migrate`: held by a running `lockstep migrate`/`exec`; migration gids are
 * recovered only by whoever holds it. A waiting holder keeps its one
 * connection between attempts.
 */
export class StreamLock implements StreamLockHolder {
  private client: pg.Client | null = null;
  private locked = false;
  private lostListeners: Array<() => void> = [];
  /** The activation epoch this holder raised (coordinator lock), null before or when not attached. */
  epoch: number | null = null;

  constructor(
    private readonly url: string,
    private readonly stream: string,
    private readonly purpose: StreamLockPurpose = 'coordinator',
  ) {}

  /** Takes the lock if it is free; false when another process holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.locked && this.client) return true;
    if (!this.client) {
      const client = await connectNode(
        'primary',
        this.url,
        `lockstep-${this.purpose}`,
        CONTROL_QUERY_TIMEOUT_MS,
      );
      client.on('end', () => {
        if (this.client !== client) return;
        this.lose();
      });
      this.client = client;
    }
    try {
      const { rows } = await this.client.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_lock(${PURPOSE_KEY}, ${STREAM_KEY}) AS locked`,
        keyValues(this.stream, this.purpose),
      );
      if (rows[0]?.locked !== true) return false;
      if (this.purpose === 'coordinator') {
        // Raised on the lock's own session: waits for a deposed holder's fenced decision in
        // flight. Durable, or a crash of the primary could hand the next holder the same epoch.
        await this.client.query(AT_LEAST_LOCAL_COMMIT);
        const row = await raiseEpoch(controlDbOn(this.client), this.stream);
        // No row: the stream is not attached; the holder may clean up (detach) but not decide.
        this.epoch = row ? Number(row.epoch) : null;
      }
      this.locked = true;
      return true;
    } catch (error) {
      await this.release();
      throw scrubbedError(error, this.url);
    }
  }

  /** Whether this process still holds the lock (its session is alive). */
  get held(): boolean {
    return this.locked && this.client !== null;
  }

  /** Calls `listener` once the lock is lost while held (its session ended, or {@link verify} failed). */
  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  /**
   * Asks the lock's session whether it still holds the lock and the epoch is
   * still its own. A session that does not answer within a few seconds is
   * dropped: the lock counts as lost (fail closed), never as held.
   */
  async verify(): Promise<boolean> {
    const client = this.client;
    if (!this.locked || !client) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = client.query<{ held: boolean; epoch: string | null }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = pg_backend_pid() AND l.locktype = 'advisory' AND l.granted
                           AND l.objsubid = 2 AND l.classid::int = ${PURPOSE_KEY} AND l.objid::int = ${STREAM_KEY}) AS held,
                (SELECT epoch::text FROM lockstep.streams WHERE stream = $1) AS epoch`,
        keyValues(this.stream, this.purpose),
      );
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('the lock session does not answer')),
          VERIFY_TIMEOUT_MS,
        );
      });
      const { rows } = await Promise.race([answer, late]);
      const row = rows[0];
      const epochOk =
        this.purpose !== 'coordinator' || this.epoch === null || Number(row?.epoch) === this.epoch;
      if (row?.held === true && epochOk) return true;
    } catch {
      // Unknown is lost: the session is dropped below.
    } finally {
      clearTimeout(timer);
    }
    if (this.client === client) {
      this.lose();
      dropClient(client);
    }
    return false;
  }

  /** Releases the lock (if held) by ending its session. */
  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.locked = false;
    this.epoch = null;
    if (client) await endClient(client);
  }

  private lose(): void {
    const wasLocked = this.locked;
    this.client = null;
    this.locked = false;
    if (!wasLocked) return;
    for (const listener of this.lostListeners) listener();
  }
}

/** Whether some session on the primary holds `stream`'s lock of `purpose` now (read by `status`). */
export async function streamLockHeld(
  client: pg.ClientBase,
  stream: string,
  purpose: StreamLockPurpose = 'coordinator',
): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks l
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND l.classid::int = ${PURPOSE_KEY} AND l.objid::int = ${STREAM_KEY}) AS held`,
    keyValues(stream, purpose),
  );
  return rows[0]?.held === true;
}
