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
 * the deadline bounds a round trip, not the size of a transaction. Nor is a
 * statement the server is still working on silence (an index build on a
 * large table): silent for half the deadline, the target is asked, within
 * the other half, and busy counts as an answer. A busy replica is slow, not
 * silent (as native logical replication sees it), so it is bounded as a slow
 * one is (see {@link guardStep}); one not busy is still dropped at the
 * deadline, not a probe later.
 */
export async function withinDeadline<T>(
  target: ReplicaTarget,
  node: string,
  timeoutMs: number,
  work: Promise<T>,
  version: number,
  /** Told each time a silent replica was found busy: for how long since its last answer, on what wait. */
  onBusy?: (busyMs: number, waitEvent: string | null) => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  let settled = false;
  const deadline = new Promise<never>((_, reject) => {
    let heard = target.heard?.();
    let lastAnswer = Date.now();
    /** The last statement answered, when busy findings have stood in for answers since. */
    let answeredAt = lastAnswer;
    /** The silence a probe was sent for (one per silence), and whether it is still out. */
    let askedAt: number | null = null;
    let asking = false;
    /** Whether an answer came since the last look. */
    const answered = () => {
      const heardNow = target.heard?.();
      if (heardNow === undefined || heardNow === heard) return false;
      heard = heardNow;
      return true;
    };
    const ask = (busy: NonNullable<ReplicaTarget['busy']>) => {
      askedAt = lastAnswer;
      asking = true;
      busy(timeoutMs / 2).then(
        (answer) => {
          asking = false;
          if (settled) return;
          if (answer.busy) {
            lastAnswer = Date.now();
            onBusy?.(lastAnswer - answeredAt, answer.waitEvent);
          }
          look();
        },
        () => {
          asking = false;
          if (!settled) look();
        },
      );
    };
    const look = () => {
      clearTimeout(timer);
      const now = Date.now();
      if (answered()) lastAnswer = answeredAt = now;
      const silentMs = now - lastAnswer;
      if (silentMs >= timeoutMs / 2 && target.busy && !asking && askedAt !== lastAnswer)
        ask(target.busy.bind(target));
      // The probe's answer, due by the deadline, decides; one overdue is not waited for.
      if (silentMs >= timeoutMs && (!asking || silentMs >= timeoutMs * 1.5)) {
        expired = true;
        target.abort();
        reject(unresponsive(node, timeoutMs, version));
        return;
      }
      const nextMark = silentMs < timeoutMs / 2 ? timeoutMs / 2 : timeoutMs;
      const wait = silentMs >= timeoutMs ? timeoutMs / LOOKS_PER_DEADLINE : nextMark - silentMs;
      timer = setTimeout(look, Math.min(timeoutMs / LOOKS_PER_DEADLINE, wait));
    };
    const firstLook =
      heard === undefined && !target.busy ? timeoutMs : timeoutMs / LOOKS_PER_DEADLINE;
    timer = setTimeout(look, firstLook);
  });
  work.catch(() => undefined); // after the deadline, its failure is the dropped connection's
  try {
    return await Promise.race([work, deadline]);
  } finally {
    settled = true;
    clearTimeout(timer);
    if (expired) work.catch(() => undefined);
  }
}

function unresponsive(node: string, timeoutMs: number, version: number): ApplyError {
  return new ApplyError({
    node,
    kind: 'unresponsive',
    version,
    problem: `the replica did not answer within ${timeoutMs} ms: its connection was dropped`,
    fix: 'check the replica server and the network to it (a frozen host, a full disk, a lock held for long); lockstep retries and catches up by itself',
  });
}

/** Who applies to a replica: what {@link guardStep} bounds and where it notes a busy replica. */
export interface StepOwner {
  readonly target: ReplicaTarget;
  readonly name: string;
  readonly applyTimeoutMs: number;
  note(message: string, fields: Record<string, unknown>): void;
  /**
   * Told each time the replica was found busy: it counts as busy and, where
   * that loses no work, stops holding what the other replicas need (the
   * packet window), as a halted one does.
   */
  busy?(): void;
}

/** When each owner last logged its replica busy: at most once per deadline. */
const lastBusyNote = new WeakMap<StepOwner, number>();

/**
 * {@link withinDeadline} for one step of `owner`'s. A replica found busy is
 * not dropped: its owner is told (between packets it lets go of the window,
 * so it holds no other replica back; it finds its place again, or has the
 * stream re-read, once done), and the log says why it lags, once per
 * deadline at most.
 */
export function guardStep<T>(owner: StepOwner, work: Promise<T>, version: number): Promise<T> {
  const { target, name, applyTimeoutMs } = owner;
  return withinDeadline(target, name, applyTimeoutMs, work, version, (busyMs, waitEvent) => {
    owner.busy?.();
    const now = Date.now();
    if (now - (lastBusyNote.get(owner) ?? Number.NEGATIVE_INFINITY) < applyTimeoutMs) return;
    lastBusyNote.set(owner, now);
    owner.note('busy with a long statement', {
      event: 'replica-busy',
      node: name,
      version,
      busyMs,
      ...(waitEvent ? { waitEvent } : {}),
    });
  });
}
