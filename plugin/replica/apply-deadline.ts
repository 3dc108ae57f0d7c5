import { ApplyError } from '../ports/apply-error.js';
import type { ReplicaTarget } from './replica-target.js';

/** Looks at the replica's answers this many times per deadline: it is noticed silent within 1¼ deadlines. */
const LOOKS_PER_DEADLINE = 4;

/**
 * Bounds one step of work on a replica by its silence: should the replica
 * answer no statement for `timeoutMs` (a frozen host, a hung connection, a
 * lock held for ever) while the step is unsettled, the connection is dropped
 * (the step then fails at once) and the replica counts as unresponsive — it
 * stops pinning the window, and a round waiting for its vote hears no at once
 * instead of a timeout later. A step the replica keeps answering (a large
 * two-phase packet, applied and prepared as one) runs as long as it takes:
 * the deadline bounds a round trip, not the size of a transaction.
 */
export async function withinDeadline<T>(
  target: ReplicaTarget,
  node: string,
  timeoutMs: number,
  work: Promise<T>,
  version: number,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  const deadline = new Promise<never>((_, reject) => {
    let heard = target.heard?.();
    let lastAnswer = Date.now();
    const look = () => {
      const now = Date.now();
      const heardNow = target.heard?.();
      if (heardNow !== undefined && heardNow !== heard) {
        heard = heardNow;
        lastAnswer = now;
      }
      const silentMs = now - lastAnswer;
      if (silentMs < timeoutMs) {
        timer = setTimeout(look, Math.min(timeoutMs / LOOKS_PER_DEADLINE, timeoutMs - silentMs));
        return;
      }
      expired = true;
      target.abort();
      reject(
        new ApplyError({
          node,
          kind: 'unresponsive',
          version,
          problem: `the replica did not answer within ${timeoutMs} ms: its connection was dropped`,
          fix: 'check the replica server and the network to it (a frozen host, a full disk, a lock held for long); lockstep retries and catches up by itself',
        }),
      );
    };
    timer = setTimeout(look, heard === undefined ? timeoutMs : timeoutMs / LOOKS_PER_DEADLINE);
  });
  work.catch(() => undefined); // after the deadline, its failure is the dropped connection's
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    if (expired) work.catch(() => undefined);
  }
}
