import type pg from 'pg';
import type { BusyAnswer } from '../../../plugin/ports/busy-answer.js';
import { lookAtBackend } from '../connection/backend-probe.js';
import { AT_LEAST_LOCAL_COMMIT, clientConfig } from '../connection/connection-url.js';
import { watchIdleEnd } from '../connection/idle-end.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { boundIdleInTransaction } from '../connection/session-bounds.js';

/** Idle for less than this part of the bound still counts as busy: its answer may be on its way as the probe looks. */
const IDLE_GRACES_PER_BOUND = 4;

/** A pipelined apply client for `node` (not connected): the reason its session was ended for idling is kept (idle-end.ts). */
export function newApplyClient(url: string, node: string): pg.Client {
  const client = new LibpqClient({
    ...clientConfig(url, `lockstep-apply-${node}`),
    pipeline: true,
  });
  watchIdleEnd(client);
  return client;
}

/** The backend of each apply client set up (read, not pg's processID: a pooler makes that one up). */
const backends = new WeakMap<pg.Client, number>();

/** The session settings of an apply connection, right after it connected; its backend noted. */
export async function setUpApplySession(client: pg.Client, idleMs: number): Promise<void> {
  // The slot is confirmed past what replicas commit: a commit must survive the replica's crash.
  await client.query(AT_LEAST_LOCAL_COMMIT);
  await boundIdleInTransaction(client, idleMs);
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  if (rows[0]) backends.set(client, rows[0].pid);
}

/**
 * Whether the apply session's backend is busy with its statement, asked on a
 * fresh session within `boundMs` (see backend-probe.ts). Its client heard
 * nothing for the apply deadline, so the backend asleep (pg_sleep) or
 * waiting on that connection is not busy with it either.
 */
export async function applySessionBusy(
  url: string,
  client: pg.Client | null,
  boundMs: number,
): Promise<BusyAnswer> {
  const pid = client ? backends.get(client) : undefined;
  const idleGraceMs = boundMs / IDLE_GRACES_PER_BOUND;
  const look = await lookAtBackend({ url, pid, boundMs, idleGraceMs, onlyOwnWork: true });
  return { busy: look.reason === null, waitEvent: look.waitEvent };
}
