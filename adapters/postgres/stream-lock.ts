import type pg from 'pg';
import { scrubbedError } from './connection-url.js';
import { connectNode } from './node-connection.js';

/** What a stream lock guards. */
export type StreamLockPurpose = 'coordinator' | 'migrate';

/** The two advisory-lock keys of a stream's lock (purpose, stream); the one place they are derived. */
const [PURPOSE_KEY, STREAM_KEY] = ['hashtext($2)', 'hashtext($1)'];
const keyValues = (stream: string, purpose: StreamLockPurpose) => [stream, `lockstep.${purpose}`];

/**
 * A session advisory lock on the primary for one stream, held on a dedicated
 * connection; if its holder dies, the session ends and the lock is free.
 * `coordinator`: held by the active sidecar (or `lockstep recover`): only it
 * starts stream rounds or recovers them, so no recoverer touches a round in
 * flight and a second sidecar stands by. `migrate`: held by a running
 * `lockstep migrate`/`exec`; migration gids are recovered only by whoever
 * holds it. A waiting holder keeps its one connection between attempts.
 */
export class StreamLock {
  private client: pg.Client | null = null;
  private locked = false;

  constructor(
    private readonly url: string,
    private readonly stream: string,
    private readonly purpose: StreamLockPurpose = 'coordinator',
  ) {}

  /** Takes the lock if it is free; false when another process holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.locked && this.client) return true;
    if (!this.client) {
      const client = await connectNode('primary', this.url, `lockstep-${this.purpose}`);
      client.on('end', () => {
        if (this.client !== client) return;
        this.client = null;
        this.locked = false;
      });
      this.client = client;
    }
    try {
      const { rows } = await this.client.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_lock(${PURPOSE_KEY}, ${STREAM_KEY}) AS locked`,
        keyValues(this.stream, this.purpose),
      );
      this.locked = rows[0]?.locked === true;
      return this.locked;
    } catch (error) {
      await this.release();
      throw scrubbedError(error, this.url);
    }
  }

  /** Whether this process still holds the lock (its session is alive). */
  get held(): boolean {
    return this.locked && this.client !== null;
  }

  /** Releases the lock (if held) by ending its session. */
  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.locked = false;
    await client?.end().catch(() => undefined);
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
