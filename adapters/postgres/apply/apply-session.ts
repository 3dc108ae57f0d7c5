import type pg from 'pg';
import { AT_LEAST_LOCAL_COMMIT, clientConfig } from '../connection/connection-url.js';
import { watchIdleEnd } from '../connection/idle-end.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { boundIdleInTransaction } from '../connection/session-bounds.js';

/** A pipelined apply client for `node` (not connected): the reason its session was ended for idling is kept (idle-end.ts). */
export function newApplyClient(url: string, node: string): pg.Client {
  const client = new LibpqClient({
    ...clientConfig(url, `lockstep-apply-${node}`),
    pipeline: true,
  });
  watchIdleEnd(client);
  return client;
}

/** The session settings of an apply connection, right after it connected. */
export async function setUpApplySession(client: pg.Client, idleMs: number): Promise<void> {
  // The slot is confirmed past what replicas commit: a commit must survive the replica's crash.
  await client.query(AT_LEAST_LOCAL_COMMIT);
  await boundIdleInTransaction(client, idleMs);
}
