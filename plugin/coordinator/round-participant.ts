import type { Lsn } from '../protocol/index.js';

/** *prepare(v)*: deliver packets `from..to` as one prepared transaction named `gid`. */
export interface PrepareRequest {
  readonly gid: string;
  /** The stream's round number (part of the gid). */
  readonly round: number;
  /** First and last packet version of the round (consecutive two-phase packets may share one). */
  readonly from: number;
  readonly to: number;
  /** The last packet's commit LSN: where a participant stands once the round commits. */
  readonly toLsn: Lsn;
}

/** A participant's answer to *prepare*. */
export type Vote =
  | { readonly vote: 'yes' }
  /** Behind `from - 1`: it holds only `at`, and needs the delta first. */
  | { readonly vote: 'needs-update'; readonly at: number }
  | { readonly vote: 'no'; readonly reason: string };

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
  /** Applies the round's packets and prepares them, or says why not. */
  prepare(request: PrepareRequest): Promise<Vote>;
  /** Resolves once it holds `from - 1` (the delta was applied); rejects when it cannot get there now. */
  delta(request: PrepareRequest): Promise<void>;
  /** Phase two is done on its node: the prepared transaction was committed or rolled back. */
  decided(request: PrepareRequest, outcome: ParticipantOutcome): void;
}

// The ports phase two and the decision log serve, re-exported where the round's callers look.
export type { DecisionStore } from '../ports/decision-store.js';
export type { PhaseTwoNode } from '../ports/phase-two-node.js';
