import { probeBackend, type Unresponsive, within } from '../connection/backend-probe.js';
import { endWhenDropped } from '../connection/session-bounds.js';

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
    // Between two statements of a phase the backend is idle for a round trip:
    // idle for less than the bound is still working.
    const reason = await probeBackend({ url: watch.url, pid: watch.pid(), boundMs: watch.boundMs });
    // It may have finished while the probe looked (idle then, but done).
    if (reason === null || done) continue;
    watch.drop();
    throw new LoadPhaseFrozen(phase, reason, watch.boundMs);
  }
}
