import { ApplyError } from '../ports/apply-error.js';
import type { ReplicaTarget } from './replica-target.js';

/**
 * Bounds one step of work on a replica: should it not settle within
 * `timeoutMs`, the connection is dropped (the step then fails at once) and
 * the replica counts as unresponsive — it stops pinning the window, and a
 * round waiting for its vote hears no at once instead of a timeout later.
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
    timer = setTimeout(() => {
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
    }, timeoutMs);
  });
  work.catch(() => undefined); // after the deadline, its failure is the dropped connection's
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    if (expired) work.catch(() => undefined);
  }
}
