/**
 * *prepare(v)* and a participant's vote: the same shapes in process and on
 * the bus (`protocol/round-subjects.ts` documents them).
 */
import type { NotLandedError } from '../ports/lockstep-error.js';
import type { WirePrepare, WireVote } from '../protocol/round-subjects.js';

export type PrepareRequest = WirePrepare;
export type Vote = WireVote;

/** How a round ended for one participant. */
export type ParticipantOutcome = 'committed' | 'rolled-back';

/**
 * One side of the transport between the coordinator and a participant (DESIGN.md:
 * the default transport is in-process; the same calls can travel over a network).
 */
export interface RoundParticipant {
  /** The participant's node name. */
  readonly name: string;
  /** The version it durably holds, when known. */
  readonly heldVersion: number | null;
  /**
   * Applies the round's packets and prepares them, or says why not.
   * `deadlineMs` is the round's vote deadline (it grows with the round's
   * rows): a transport waits at least that long for the answer.
   */
  prepare(request: PrepareRequest, deadlineMs?: number): Promise<Vote>;
  /**
   * A count that grows with the participant's new work towards its vote (its
   * replica answers the round's apply; not keepalives, not work done again):
   * a round whose vote deadline passed while it grew waits another deadline,
   * so a large prepare is not taken for a participant that does not answer.
   * -1: no count (not working on this round). Without it, the deadline is final.
   */
  progress?(gid: string): number;
  /** Resolves once it holds `from - 1` (the delta was applied); rejects when it cannot get there now. */
  delta(request: PrepareRequest): Promise<void>;
  /** Phase two is done on its node: the prepared transaction was committed or rolled back. */
  decided(request: PrepareRequest, outcome: ParticipantOutcome): void;
  /**
   * COMMIT PREPARED found the round's gid rolled back outside lockstep on its
   * node (told before `decided` rolled-back): its status names it until it
   * applies again. A participant over the bus is told by its agent instead.
   */
  notLanded?(request: PrepareRequest, error: NotLandedError): void;
}

// The ports phase two and the decision log serve, re-exported where the round's callers look.
export type { DecisionStore } from '../ports/decision-store.js';
export type { PhaseTwoNode } from '../ports/phase-two-node.js';
