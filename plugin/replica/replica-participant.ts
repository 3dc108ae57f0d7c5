import type {
  ParticipantOutcome,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../coordinator/round-participant.js';
import type { NotLandedError } from '../ports/lockstep-error.js';
import { RecentSet } from '../support/recent-set.js';
import { sleep } from '../support/sleep.js';
import type { ReplicaPosition } from './replica-target.js';

/** Ended rounds remembered, for their prepares still on the way: a few dozen are plenty. */
const ENDED_KEPT = 64;

const endedVote = (gid: string): Vote => ({
  vote: 'no',
  reason: `round ${gid} ended before this replica reached it`,
});

/** What the participant needs to know of its replica's applier. */
export interface ParticipantHost {
  readonly name: string;
  readonly position: ReplicaPosition | null;
  readonly stopping: boolean;
  /** Waiting out the backoff after a failure: it cannot take part in a round now. */
  readonly inBackoff: boolean;
  /** Failed (halted or unresponsive), with the failure's text when known. */
  readonly failed: boolean;
  readonly failure: string | null;
  /** Grows whenever its replica answered a statement (see `ReplicaTarget.heard`). */
  heard(): number;
  /**
   * Round `gid`'s count of the applier's new work on large packet `version`,
   * whose parts stream into an open transaction; -1 when not on it.
   */
  progressOn(version: number, gid: string): number;
  /** Its gid was rolled back outside lockstep: counted, and its error until it applies again. */
  notLanded(error: NotLandedError): void;
}

/**
 * A replica's side of the two-phase round: the coordinator's calls land here,
 * and the applier (`ReplicaApplier`, driving `protocol/replica-apply.ts`) picks
 * them up at its gate. A prepare waits parked until the applier takes it; the
 * applier answers it after PREPARE TRANSACTION and then waits for the decision.
 */
export class ReplicaParticipant implements RoundParticipant {
  /** Highest version a round committed on this replica (told by the coordinator after COMMIT PREPARED). */
  committedThrough = 0;
  private parked: { request: PrepareRequest; resolve: (vote: Vote) => void } | null = null;
  /** The prepare the applier took: it answers it. */
  private taken: ((vote: Vote) => void) | null = null;
  /** The gid of the prepare taken: progress on an older round's apply is not this round's. */
  private takenGid: string | null = null;
  /** Where the taken prepare's count goes on from: its progress parked, and the replica's answers then. */
  private takenFrom = { progress: 0, heard: 0 };
  private decisionWaiter: {
    gid: string;
    resolve: (outcome: ParticipantOutcome | null) => void;
  } | null = null;
  private deltaWaiters: Array<{
    version: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }> = [];
  private gateSignal: (() => void) | null = null;
  /** Rounds that ended lately: a prepare of one that arrives late is never parked. */
  private readonly endedGids = new RecentSet<string>(ENDED_KEPT);

  constructor(private readonly host: ParticipantHost) {}

  get name(): string {
    return this.host.name;
  }

  /**
   * Its replica's answers while the applier works on this round: on a prepare
   * it took, or, parked, new work on the round's own packet (a large one
   * streams into an open transaction before the gate: `progressOn`). A round
   * extends its vote deadline while this grows. -1 otherwise (parked behind
   * other work), and constant while an open transaction only idles (its
   * keepalives answer), so a prepare the applier does not work towards still
   * ends at the deadline.
   */
  progress(gid: string): number {
    if (this.taken) {
      if (this.takenGid !== gid) return -1;
      // One count across the take: the answers since go on from where it stood parked.
      const since = this.host.heard() - this.takenFrom.heard;
      return this.takenFrom.progress + Math.max(since, 0);
    }
    const parked = this.parked?.request;
    const own = parked?.gid === gid && parked.from === parked.to;
    return own ? this.host.progressOn(parked.from, gid) : -1;
  }

  /** The version this replica durably holds, when known. */
  get heldVersion(): number | null {
    return this.host.position?.version ?? null;
  }

  /**
   * *prepare*: `needs-update` when behind the round's first packet, `no` when
   * halted; otherwise the applier takes the request once it reaches that
   * packet and answers after PREPARE TRANSACTION (or with the reason it failed).
   */
  async prepare(request: PrepareRequest): Promise<Vote> {
    const host = this.host;
    for (;;) {
      if (host.stopping) return { vote: 'no', reason: 'the sidecar is stopping' };
      if (host.inBackoff || (host.failed && !host.position))
        return { vote: 'no', reason: host.failure ?? `replica ${host.name} is halted` };
      if (host.position) break;
      await sleep(50);
    }
    const at = (host.position as ReplicaPosition).version;
    if (at < request.from - 1) return { vote: 'needs-update', at };
    if (at >= request.from) {
      return {
        vote: 'no',
        reason: `replica ${host.name} already holds version ${at}, at or past the round's first version ${request.from}`,
      };
    }
    // Its round ended while this prepare waited for the replica's position.
    if (this.endedGids.has(request.gid)) return endedVote(request.gid);
    return new Promise<Vote>((resolve) => {
      this.parked?.resolve({ vote: 'no', reason: 'superseded by a newer prepare' });
      this.parked = { request, resolve };
      this.wakeGate();
    });
  }

  /** Resolves once the applier holds the version before the round (it fetches the delta itself). */
  delta(request: PrepareRequest): Promise<void> {
    const host = this.host;
    if ((host.position?.version ?? -1) >= request.from - 1) return Promise.resolve();
    if (host.inBackoff || host.stopping)
      return Promise.reject(new Error(host.failure ?? `replica ${host.name} is halted`));
    return new Promise((resolve, reject) =>
      this.deltaWaiters.push({ version: request.from - 1, resolve, reject }),
    );
  }

  /** Phase two finished on this replica's node. */
  decided(request: PrepareRequest, outcome: ParticipantOutcome): void {
    this.ended(request.gid);
    if (outcome === 'committed')
      this.committedThrough = Math.max(this.committedThrough, request.to);
    if (this.decisionWaiter?.gid === request.gid) {
      const waiter = this.decisionWaiter;
      this.decisionWaiter = null;
      waiter.resolve(outcome);
    }
    this.wakeGate();
  }

  /**
   * Round `gid` ended (decided, or rolled back at the agent): a prepare of it,
   * parked or still on its way, is answered no and never taken at the gate,
   * since preparing it would only be rolled back and the large packet
   * applied again by the next attempt.
   */
  ended(gid: string): void {
    this.endedGids.add(gid);
    const parked = this.parked;
    if (parked?.request.gid !== gid) return;
    this.parked = null;
    parked.resolve(endedVote(gid));
  }

  /** COMMIT PREPARED found this replica's gid rolled back outside lockstep. */
  notLanded(_request: PrepareRequest | null, error: NotLandedError): void {
    this.host.notLanded(error);
  }

  /** A round committed somewhere: an applier waiting at a gate looks again. */
  nudge(): void {
    this.wakeGate();
  }

  /** The parked prepare, not taken yet. */
  get pending(): PrepareRequest | null {
    return this.parked?.request ?? null;
  }

  /** The applier takes the parked prepare: from now on it answers it. */
  take(): void {
    const gid = this.parked?.request.gid;
    // Reaching the gate counts as a step (+1) from its progress parked (-1: none, so 0).
    if (gid !== undefined)
      this.takenFrom = { progress: this.progress(gid) + 1, heard: this.host.heard() };
    this.taken = this.parked?.resolve ?? null;
    this.takenGid = this.parked?.request.gid ?? null;
    this.parked = null;
  }

  /** Answers the prepare the applier took. */
  answer(vote: Vote): void {
    const resolve = this.taken;
    this.taken = null;
    resolve?.(vote);
  }

  /** Votes yes, registered for the round's outcome first so that a quick decision is not missed. Null when stopping. */
  voteYes(gid: string): Promise<ParticipantOutcome | null> {
    const outcome = new Promise<ParticipantOutcome | null>((resolve) => {
      this.decisionWaiter = { gid, resolve };
    });
    this.answer({ vote: 'yes' });
    return outcome;
  }

  /** Resolves at the next word from the coordinator (a prepare, a decision, a nudge), or at `also`. */
  gateChanged(also: Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      this.gateSignal = resolve;
      void also.then(resolve);
    });
  }

  /** Answers a parked prepare and delta requests: this replica cannot take part now. */
  refuseWaiting(reason: string): void {
    const parked = this.parked;
    this.parked = null;
    parked?.resolve({ vote: 'no', reason });
    const waiters = this.deltaWaiters;
    this.deltaWaiters = [];
    for (const waiter of waiters) waiter.reject(new Error(reason));
  }

  /** The replica moved: delta requests it now satisfies are answered. */
  settleDeltas(): void {
    const at = this.host.position?.version ?? -1;
    this.deltaWaiters = this.deltaWaiters.filter((waiter) => {
      if (at < waiter.version) return true;
      waiter.resolve();
      return false;
    });
  }

  /** The agent stops: nothing waits on it any more. */
  stop(): void {
    this.refuseWaiting('the sidecar is stopping');
    const waiter = this.decisionWaiter;
    this.decisionWaiter = null;
    waiter?.resolve(null);
    this.wakeGate();
  }

  private wakeGate(): void {
    const wake = this.gateSignal;
    this.gateSignal = null;
    wake?.();
  }
}
