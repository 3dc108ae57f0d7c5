import type pg from 'pg';
import type { ReplicaLockPort } from '../../../plugin/ports/packet-reader.js';
import { CONTROL_QUERY_TIMEOUT_MS, scrubbedError } from '../connection/connection-url.js';
import { connectNode, dropClient, endClient } from '../connection/node-connection.js';

/** The two advisory-lock keys (a fixed lockstep constant, the stream); the one place they are derived. */
const KEYS = 'hashtext($1), hashtext($2)';
const keyValues = (stream: string) => ['lockstep.agent', stream];

/** How long a check of the lock session may take before the lock counts as lost. */
const VERIFY_TIMEOUT_MS = 5_000;

/**
 * One `lockstep agent` per replica and stream: a session advisory lock on the
 * replica, held on a connection of its own. When its agent dies the session
 * ends and the lock is free for an agent standing by. The replica's
 * compare-and-set on its position keeps two writers safe anyway; the lock
 * keeps them from fighting over it.
 */
export class ReplicaAgentLock implements ReplicaLockPort {
  private client: pg.Client | null = null;
  private locked = false;
  private readonly lostListeners: Array<() => void> = [];

  constructor(
    private readonly node: string,
    private readonly url: string,
    private readonly stream: string,
  ) {}

  get held(): boolean {
    return this.locked && this.client !== null;
  }

  async tryAcquire(): Promise<boolean> {
    if (this.held) return true;
    if (!this.client) {
      const client = await connectNode(
        this.node,
        this.url,
        'lockstep-agent-lock',
        CONTROL_QUERY_TIMEOUT_MS,
      );
      client.on('end', () => {
        if (this.client === client) this.lose();
      });
      this.client = client;
    }
    try {
      const { rows } = await this.client.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_lock(${KEYS}) AS locked`,
        keyValues(this.stream),
      );
      this.locked = rows[0]?.locked === true;
      return this.locked;
    } catch (error) {
      await this.release();
      throw scrubbedError(error, this.url);
    }
  }

  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  async verify(): Promise<boolean> {
    const client = this.client;
    if (!this.locked || !client) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = client.query<{ held: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = pg_backend_pid() AND l.locktype = 'advisory' AND l.granted
                           AND l.objsubid = 2 AND l.classid::int = hashtext($1) AND l.objid::int = hashtext($2)) AS held`,
        keyValues(this.stream),
      );
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer')), VERIFY_TIMEOUT_MS);
      });
      const { rows } = await Promise.race([answer, late]);
      if (rows[0]?.held === true) return true;
    } catch {
      // Unknown is lost (fail closed): the session is dropped below.
    } finally {
      clearTimeout(timer);
    }
    if (this.client === client) {
      this.lose();
      dropClient(client);
    }
    return false;
  }

  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.locked = false;
    if (client) await endClient(client);
  }

  private lose(): void {
    const wasLocked = this.locked;
    this.client = null;
    this.locked = false;
    if (wasLocked) for (const listener of this.lostListeners) listener();
  }
}
