import pg from 'pg';
import { clientConfig, scrubbedError } from './connection-url.js';

/** What a stream lock guards. */
export type StreamLockPurpose = 'coordinator' | 'migrate';

/**
 * A session advisory lock on the primary for one stream, held on a dedicated
 * connection; if its holder dies, the session ends and the lock is free.
 * `coordinator`: held by the active sidecar (or `lockstep recover`): only it
 * starts stream rounds or recovers them, so no recoverer touches a round in
 * flight and a second sidecar stands by. `migrate`: held by a running
 * `lockstep migrate`/`exec`; migration gids are recovered only by whoever
 * holds it.
 */
export class StreamLock {
  private client: pg.Client | null = null;

  constructor(
    private readonly url: string,
    private readonly stream: string,
    private readonly purpose: StreamLockPurpose = 'coordinator',
  ) {}

  /** Takes the lock if it is free; false when another process holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.client) return true;
    const client = new pg.Client({
      ...clientConfig(this.url, `lockstep-${this.purpose}`),
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtext($2), hashtext($1)) AS locked',
        [this.stream, `lockstep.${this.purpose}`],
      );
      if (!rows[0]?.locked) {
        await client.end().catch(() => undefined);
        return false;
      }
      this.client = client;
      client.on('end', () => {
        if (this.client === client) this.client = null;
      });
      return true;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw scrubbedError(error, this.url);
    }
  }

  /** Whether this process still holds the lock (its session is alive). */
  get held(): boolean {
    return this.client !== null;
  }

  /** Releases the lock by ending its session. */
  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}
