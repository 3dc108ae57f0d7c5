import type pg from 'pg';
import { AT_LEAST_LOCAL_COMMIT, clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { boundIdleInTransaction, IDLE_IN_TRANSACTION_ENDED } from '../connection/session-bounds.js';

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
  await boundIdleInTransaction(client, idleMs);
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
