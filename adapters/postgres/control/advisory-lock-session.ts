import type pg from 'pg';
import { CONTROL_QUERY_TIMEOUT_MS, scrubbedError } from '../connection/connection-url.js';
import { connectNode, dropClient, endClient } from '../connection/node-connection.js';
import {
  boundControlSession,
  boundLockSessionIdle,
  LOCK_SESSION_IDLE_MS,
} from '../connection/session-bounds.js';
import { SessionKeepalive } from '../connection/session-keepalive.js';
import { advisoryLockHeld } from './advisory-lock-held.js';

/** How long a check of the lock session may take before the lock counts as lost. */
const VERIFY_TIMEOUT_MS = 5_000;

/** Where the lock is and what it is called: keys are hashed with `hashtext`, as `(kind, name)`. */
export interface AdvisoryLockTarget {
  /** The node named in errors. */
  readonly node: string;
  readonly url: string;
  /** The session's application_name. */
  readonly application: string;
  /** The first key, e.g. `lockstep.coordinator`. */
  readonly kind: string;
  /** The second key, e.g. the stream. */
  readonly name: string;
  /** The lock session's query deadline (ms; `controlTimeoutMs`). */
  readonly queryTimeoutMs?: number;
}

/**
 * A session advisory lock held on a connection of its own: when its holder
 * dies the session ends and the lock is free. A session that ends or does not
 * answer a check counts as lost (fail closed), never as held. A holder that
 * waits keeps its one connection between attempts.
 */
export class AdvisoryLockSession {
  private client: pg.Client | null = null;
  private locked = false;
  /** The lock session's backend, as the server names it (pg's processID is a pooler's own). */
  private backendPid: number | null = null;
  private readonly keepalive = new SessionKeepalive(LOCK_SESSION_IDLE_MS / 5);
  private readonly lostListeners: Array<() => void> = [];

  constructor(private readonly target: AdvisoryLockTarget) {}

  get held(): boolean {
    return this.locked && this.client !== null;
  }

  /** The backend pid of the lock's session while held (null otherwise). */
  get pid(): number | null {
    return this.held ? this.backendPid : null;
  }

  /** Runs `read` on the lock's session, which has a deadline for each query; only while held. */
  async onSession<T>(read: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = this.client;
    if (!this.locked || !client) throw new Error(`the lock ${this.target.kind} is not held`);
    try {
      return await read(client);
    } catch (error) {
      throw scrubbedError(error, this.target.url);
    }
  }

  /**
   * Takes the lock if it is free; false when another session holds it.
   * `taken` runs on the lock's session before the lock counts as held (an
   * error there releases it).
   */
  async tryAcquire(taken?: (client: pg.Client) => Promise<void>): Promise<boolean> {
    if (this.held) return true;
    const { node, url, application, kind, name } = this.target;
    if (!this.client) {
      const deadline = this.target.queryTimeoutMs ?? CONTROL_QUERY_TIMEOUT_MS;
      const client = await connectNode(node, url, application, deadline);
      client.on('end', () => {
        if (this.client === client) this.lose();
      });
      this.client = client;
      try {
        await boundControlSession(client, deadline);
        await boundLockSessionIdle(client);
        // Only a frozen holder's session sits idle long enough for the server to end it.
        this.keepalive.start(client, () => this.client === client);
      } catch (error) {
        await this.release();
        throw scrubbedError(error, url);
      }
    }
    try {
      const { rows } = await this.client.query<{ locked: boolean; pid: number }>(
        'SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS locked, pg_backend_pid() AS pid',
        [kind, name],
      );
      if (rows[0]?.locked !== true) return false;
      this.backendPid = rows[0].pid;
      await taken?.(this.client);
      this.locked = true;
      return true;
    } catch (error) {
      await this.release();
      throw scrubbedError(error, url);
    }
  }

  /** Calls `listener` once the lock is lost while held (its session ended, or a check failed). */
  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  /**
   * Asks the lock's session whether it still holds the lock, and `stillOurs`
   * (on the same session) whatever else the holder relies on. A session that
   * does not answer within a few seconds is dropped and the lock lost.
   */
  async verify(stillOurs?: (client: pg.Client) => Promise<boolean>): Promise<boolean> {
    const client = this.client;
    if (!this.locked || !client) return false;
    let timer: NodeJS.Timeout | undefined;
    const check = async () => {
      const held = await advisoryLockHeld(
        client,
        this.target.kind,
        this.target.name,
        'this-session',
      );
      return held && (stillOurs ? await stillOurs(client) : true);
    };
    try {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('the lock session does not answer')),
          VERIFY_TIMEOUT_MS,
        );
      });
      if (await Promise.race([check(), late])) return true;
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
    this.keepalive.stop();
    this.client = null;
    this.locked = false;
    if (client) await endClient(client);
  }

  private lose(): void {
    const wasLocked = this.locked;
    this.keepalive.stop();
    this.client = null;
    this.locked = false;
    if (wasLocked) for (const listener of this.lostListeners) listener();
  }
}
