import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { dropClient, endClient } from '../connection/node-connection.js';
import { endWhenDropped } from '../connection/session-bounds.js';

/** Why a load's backend is given up on (for the error). */
export type Unresponsive =
  | 'did not answer'
  | 'waited on a lock'
  | 'waited on a synchronous standby'
  | 'was not working';

/** A phase of a load the replica did not finish: the load's session was dropped. */
export class LoadPhaseFrozen extends Error {
  constructor(
    readonly phase: string,
    readonly reason: Unresponsive,
    readonly boundMs: number,
  ) {
    super(`the replica ${reason} for ${boundMs} ms in the ${phase} phase`);
  }
}

/**
 * For a watched transaction, sent after its BEGIN: from PostgreSQL 14 a
 * backend whose session the watchdog dropped ends within a second, even in
 * a lock wait, instead of going on with the transaction's locks held.
 */
export const END_WHEN_DROPPED_SQL = `SELECT ${endWhenDropped(true)}`;

/** What the watchdog of one load needs: where to look and what to drop. */
export interface LoadWatch {
  readonly url: string;
  /** The load session's backend, once known. */
  readonly pid: () => number | undefined;
  readonly boundMs: number;
  /** Drops the load's session (its transaction ends on the server). */
  readonly drop: () => void;
}

/**
 * Runs one phase of a replica load with a bound: every `boundMs` that the
 * phase has not finished, a fresh session asks the replica what the load's
 * backend does. Busy (an index build, ANALYZE on a big table) or between
 * two statements: the phase goes on. The replica not answering within
 * `boundMs` (a frozen host), the backend waiting on a lock or a synchronous
 * standby, or it idle for `boundMs` while a statement is due: the load's
 * session is dropped and the phase fails with {@link LoadPhaseFrozen}. Only
 * a phase that outlives `boundMs` costs a probe, never a row.
 */
export async function watchPhase<T>(phase: string, watch: LoadWatch, work: Promise<T>): Promise<T> {
  let done = false;
  const settled = work.then(
    () => true,
    () => true,
  );
  void settled.then(() => {
    done = true;
  });
  for (;;) {
    if (await within(settled, watch.boundMs)) return work;
    const reason = await probeBackend(watch);
    // It may have finished while the probe looked (idle then, but done).
    if (reason === null || done) continue;
    watch.drop();
    throw new LoadPhaseFrozen(phase, reason, watch.boundMs);
  }
}

/** True once `settled` resolved within `ms`, false after `ms`. */
async function within<V>(settled: Promise<V>, ms: number): Promise<V | false> {
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

/**
 * Between two statements of a phase the backend is idle for a round trip:
 * idle for less than the bound is still working; idle longer, the statement
 * sent to it never arrived or its answer never left.
 */
const BACKEND = `SELECT wait_event_type = 'Lock' AS locked, wait_event = 'SyncRep' AS standby,
                        state = 'active' OR now() - state_change < $2::interval AS working
                   FROM pg_stat_activity WHERE pid = $1`;

/** Null when the backend is busy with the phase's statement; else why it is given up on. */
export async function probeBackend(watch: LoadWatch): Promise<Unresponsive | null> {
  const pid = watch.pid();
  // No backend known yet (pg's processID is null before the connection's key data came).
  if (!pid) return 'did not answer';
  const client = new LibpqClient(clientConfig(watch.url, 'lockstep-probe', watch.boundMs));
  client.on('error', () => undefined);
  const asked = (async () => {
    await client.connect();
    const { rows } = await client.query<BackendState>(BACKEND, [pid, `${watch.boundMs} ms`]);
    return { row: rows[0] };
  })().catch(() => false as const);
  const answer = await within(asked, watch.boundMs);
  if (answer === false) {
    dropClient(client);
    return 'did not answer';
  }
  // A host that answered and froze right after must not hold the watchdog.
  await endClient(client);
  if (answer.row?.locked) return 'waited on a lock';
  if (answer.row?.standby) return 'waited on a synchronous standby';
  return answer.row?.working ? null : 'was not working';
}

interface BackendState {
  working: boolean;
  locked: boolean;
  standby: boolean;
}
