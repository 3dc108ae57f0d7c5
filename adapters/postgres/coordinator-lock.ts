import pg from 'pg';
import { clientConfig, scrubbedError } from './connection-url.js';

/**
 * The coordinator's lock: a session advisory lock on the primary, held on a
 * dedicated connection for as long as a sidecar coordinates (or a `lockstep
 * recover` runs). Only its holder starts rounds or recovers, so one recoverer
 * runs at a time and no recoverer touches a round in flight. If the holder
 * dies, its session ends and the lock is free.
 */
export class CoordinatorLock {
  private client: pg.Client | null = null;

  constructor(
    private readonly url: string,
    private readonly stream: string,
  ) {}

  /** Takes the lock if it is free; false when another process holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.client) return true;
    const client = new pg.Client({
      ...clientConfig(this.url, 'lockstep-coordinator'),
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock(hashtext('lockstep.coordinator'), hashtext($1)) AS locked",
        [this.stream],
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
