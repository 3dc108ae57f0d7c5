import { clientConfig } from './connection-url.js';
import { LibpqClient } from './libpq-client.js';
import { dropClient, endClient } from './node-connection.js';

/** Why a backend that outlived its bound is given up on (for the error). */
export type Unresponsive =
  | 'did not answer'
  | 'waited on a lock'
  | 'waited on a synchronous standby'
  | 'was not working';

/** Where the backend to look at is, and how long a look may take. */
export interface BackendProbe {
  readonly url: string;
  /** The backend's pid, once known. */
  readonly pid: number | undefined;
  /**
   * How long the fresh session may take to connect and answer (ms); idle for
   * less than this still counts as working (between two statements).
   */
  readonly boundMs: number;
  /** Idle for less than this still counts as working, when shorter than the bound (ms). */
  readonly idleGraceMs?: number;
  /**
   * Asleep (pg_sleep) or waiting on its own client connection is not working
   * either, and a refused probe is no answer: for a session whose client
   * heard nothing for long, none of these gets its statement done.
   */
  readonly onlyOwnWork?: boolean;
}

/** What a probe found: null reason when the backend works; its wait event, if any. */
export interface BackendLook {
  readonly reason: Unresponsive | null;
  readonly waitEvent: string | null;
}

/** What `settled` resolved to if it did within `ms`; false after `ms`. */
export async function within<V>(settled: Promise<V>, ms: number): Promise<V | false> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      settled,
      new Promise<false>((resolve) => {
        timer = setTimeout(resolve, ms, false);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const BACKEND = `SELECT wait_event_type = 'Lock' AS locked, wait_event = 'SyncRep' AS standby,
                        state = 'active' AS active, now() - state_change < $2::interval AS recent,
                        wait_event = 'PgSleep' AS asleep, wait_event_type = 'Client' AS on_client,
                        wait_event_type || ':' || wait_event AS wait_event
                   FROM pg_stat_activity WHERE pid = $1`;

/** A server's error code (SQLSTATE), as opposed to a socket's (ECONNREFUSED, …). */
const SQLSTATE = /^[0-9FHPX][0-9A-Z]{4}$/;

interface BackendState {
  locked: boolean | null;
  standby: boolean | null;
  active: boolean;
  recent: boolean;
  asleep: boolean | null;
  on_client: boolean | null;
  wait_event: string | null;
}

/**
 * Asks the server, on a fresh session, what a backend does. Null when it is
 * busy with a statement (or idle for less than the bound, between two);
 * else why it is given up on: the server not answering within the bound (a
 * frozen host), the backend waiting on a lock or a synchronous standby, or
 * not working.
 */
export async function probeBackend(probe: BackendProbe): Promise<Unresponsive | null> {
  return (await lookAtBackend(probe)).reason;
}

/** {@link probeBackend}, with the backend's wait event (`type:event`) when it answered. */
export async function lookAtBackend(probe: BackendProbe): Promise<BackendLook> {
  // No backend known yet (pg's processID is null before the connection's key data came).
  if (!probe.pid) return { reason: 'did not answer', waitEvent: null };
  const client = new LibpqClient(clientConfig(probe.url, 'lockstep-probe', probe.boundMs));
  client.on('error', () => undefined);
  const graceMs = Math.min(probe.idleGraceMs ?? probe.boundMs, probe.boundMs);
  const asked = (async () => {
    await client.connect();
    const { rows } = await client.query<BackendState>(BACKEND, [probe.pid, `${graceMs} ms`]);
    return { row: rows[0] };
  })().catch((error: { code?: unknown }) =>
    // The server refused the probe with an error of its own (too many connections, a login
    // refused): it answers, so the backend is not given up on; asked again next time.
    typeof error.code === 'string' && SQLSTATE.test(error.code) ? ('refused' as const) : false,
  );
  const answer = await within(asked, probe.boundMs);
  if (answer === false) {
    dropClient(client);
    return { reason: 'did not answer', waitEvent: null };
  }
  // Ended in the background: a host that answered and froze right after must not hold the caller.
  void endClient(client);
  if (answer === 'refused')
    return { reason: probe.onlyOwnWork ? 'did not answer' : null, waitEvent: null };
  const row = answer.row;
  return {
    reason: row ? verdict(row, probe) : 'was not working',
    waitEvent: row?.wait_event ?? null,
  };
}

function verdict(row: BackendState, probe: BackendProbe): Unresponsive | null {
  if (row.locked) return 'waited on a lock';
  if (row.standby) return 'waited on a synchronous standby';
  if (row.active && probe.onlyOwnWork && (row.asleep || row.on_client)) return 'was not working';
  return row.active || row.recent ? null : 'was not working';
}
