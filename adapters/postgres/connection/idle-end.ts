import type pg from 'pg';
import { IDLE_IN_TRANSACTION_ENDED } from './session-bounds.js';

/** The error the server ended each watched client's session with for idling in a transaction. */
const endedWith = new WeakMap<pg.ClientBase, Error>();

/**
 * Keeps the error the server ends `client`'s session with when it idled in
 * a transaction too long (boundIdleInTransaction): pg reports it as an
 * 'error' event, with no query to fail, so the next use would say only "not
 * queryable". Also keeps any error event from being thrown.
 */
export function watchIdleEnd(client: pg.Client): void {
  client.on('error', (error: Error) => noteIdleEnd(client, error));
}

/**
 * Keeps `error` when it is the server ending `client`'s session for idling:
 * a query running when it arrives (a keepalive's, right after a thaw) gets
 * it instead of the 'error' event.
 */
export function noteIdleEnd(client: pg.ClientBase, error: unknown): void {
  if ((error as { code?: string }).code === IDLE_IN_TRANSACTION_ENDED)
    endedWith.set(client, error as Error);
}

/** `error`, or the server's own reason when it ended `client`'s session for idling (and `error` has no code). */
export function explainIdleEnd(client: pg.ClientBase | null, error: unknown): unknown {
  const ended = client ? endedWith.get(client) : undefined;
  return ended && !(error as { code?: string }).code ? ended : error;
}
