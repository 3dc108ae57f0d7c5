import type pg from 'pg';
import {
  connectBounded,
  dropClient,
  unreachable,
} from '../../adapters/postgres/connection/node-connection.js';

/**
 * How long past the wait's timeout a query of `wait` may run at most. The
 * wait stops waiting on its final read {@link WAIT_FINAL_READ_MS} after its
 * timeout (waitForPositions); this deadline ends the query itself soon
 * after, on a frozen host too.
 */
const QUERY_GRACE_MS = 1_000;

/** How long past the timeout wait's final read may answer: inside the query's own deadline. */
export const WAIT_FINAL_READ_MS = QUERY_GRACE_MS / 2;

/**
 * The longest `--timeout` in seconds: its query deadline must fit a timer
 * (2^31-1 ms, about 24.8 days); a longer one would fire at once, and the
 * wait end before it began.
 */
export const WAIT_MAX_TIMEOUT_S = Math.floor((2 ** 31 - 1 - QUERY_GRACE_MS) / 1000);

/** The query deadline of `wait`'s sessions, for a wait of `timeoutMs`. */
export const waitQueryTimeoutMs = (timeoutMs: number) => timeoutMs + QUERY_GRACE_MS;

/** A replica's session for `wait`; its backend ends once the client is gone (PostgreSQL 14+), frozen host or not. */
const openOne = (replica: { name: string; url: string }, timeoutMs: number) =>
  connectBounded(replica.name, replica.url, 'lockstep-wait', waitQueryTimeoutMs(timeoutMs));

/** `open`, or an unreachable error naming `replica` if it has not settled within `ms`; a late session is dropped. */
function within(
  open: Promise<pg.Client>,
  replica: { name: string; url: string },
  ms: number,
): Promise<pg.Client> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      const error = Object.assign(new Error(`no session within the wait's timeout (${ms} ms)`), {
        code: 'ETIMEDOUT',
      });
      reject(unreachable(replica.name, replica.url, error));
    }, ms);
    open.then(
      (client) => {
        clearTimeout(timer);
        if (late) dropClient(client);
        else resolve(client);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A session on each replica, opened within the wait's timeout and its final
 * read's grace (a timeout shorter than a round trip still connects): one
 * that cannot be connected to (or set up) by then is unreachable (exit 3),
 * the first such named; every session opened is then dropped.
 */
export async function openWaitSessions(
  replicas: ReadonlyArray<{ name: string; url: string }>,
  timeoutMs: number,
): Promise<pg.Client[]> {
  const settled = await Promise.allSettled(
    replicas.map((replica) =>
      within(openOne(replica, timeoutMs), replica, timeoutMs + WAIT_FINAL_READ_MS),
    ),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const clients = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    for (const client of clients) dropClient(client);
    throw failed.reason;
  }
  return clients;
}
