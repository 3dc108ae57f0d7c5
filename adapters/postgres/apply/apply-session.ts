import type pg from 'pg';
import { AT_LEAST_LOCAL_COMMIT, clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { boundApplySession } from '../connection/session-bounds.js';

/** SQLSTATE of a session the server ended for sitting idle in a transaction. */
const IDLE_IN_TRANSACTION_ENDED = '25P03';

/** The error the server ended each apply client with, when it said why. */
const endedWith = new WeakMap<pg.Client, Error>();

/** A pipelined apply client for `node` (not connected): errors it is ended with are kept, not thrown. */
export function newApplyClient(url: string, node: string): pg.Client {
  const client = new LibpqClient({
    ...clientConfig(url, `lockstep-apply-${node}`),
    pipeline: true,
  });
  client.on('error', (error: Error & { code?: string }) => {
    if (error.code) endedWith.set(client, error);
  });
  return client;
}

/** The session settings of an apply connection, right after it connected. */
export async function setUpApplySession(client: pg.Client, idleMs: number): Promise<void> {
  // The slot is confirmed past what replicas commit: a commit must survive the replica's crash.
  await client.query(AT_LEAST_LOCAL_COMMIT);
  await boundApplySession(client, idleMs);
}

/**
 * What to explain a failure on `client` by: the server's own reason when it
 * ended the session for sitting idle in a transaction (the next use fails
 * only with "not queryable", which would read as an unreachable replica).
 */
export function applyFailure(client: pg.Client | null, error: unknown): unknown {
  const ended = client ? endedWith.get(client) : undefined;
  const code = (error as { code?: string }).code;
  return ended && !code && (ended as { code?: string }).code === IDLE_IN_TRANSACTION_ENDED
    ? ended
    : error;
}

/**
 * Keeps an open apply transaction from looking idle to the server while this
 * process runs (it may wait at a two-phase gate for as long as a round before
 * it takes): a `SELECT 1` every `everyMs`, one at a time. A frozen process
 * sends none, so the server's idle bound (boundApplySession) still ends its
 * transaction and frees the rows it holds for its successor.
 */
export class TransactionKeepalive {
  private timer: NodeJS.Timeout | null = null;
  private touching: pg.Client | null = null;

  constructor(private readonly everyMs: number) {}

  /** Touches `client` until `open()` turns false (checked at each tick). */
  start(client: pg.Client, open: () => boolean): void {
    if (this.timer && this.touching === client) return;
    this.stop();
    this.touching = client;
    let answered = true;
    this.timer = setInterval(() => {
      if (!open()) return this.stop();
      if (!answered) return;
      answered = false;
      const done = () => {
        answered = true;
      };
      client.query('SELECT 1').then(done, done);
    }, this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.touching = null;
  }
}
