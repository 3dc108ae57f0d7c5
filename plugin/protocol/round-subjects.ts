import type { Lsn } from './lsn.js';

/**
 * Two-phase rounds over the bus (DESIGN.md, "Scale-out: the packet bus"):
 * the subjects the coordinator and the agents agree on, and the messages they
 * carry (JSON). Every request of the coordinator carries its fencing epoch: an
 * agent that saw a newer one refuses it.
 */

/** What the coordinator asks an agent. */
export type AgentVerb =
  | 'prepare'
  | 'delta'
  | 'decided'
  | 'list'
  | 'commit'
  | 'rollback'
  /** A migration round (`migrate`, `exec`): where the replica stands, and its prepare. */
  | 'applied'
  | 'migrate'
  /**
   * Answered at once from the agent's event loop: asked while a `migrate` is
   * outstanding, to tell a frozen agent from one still catching up, and
   * where that migration stands there (its answer may have been lost).
   */
  | 'alive';

/** The subject on which the agent of `replica` answers `verb` for slot `slot`. */
export function agentSubject(slot: string, replica: string, verb: AgentVerb): string {
  return `lockstep.${slot}.agent.${replica}.${verb}`;
}

/**
 * Where agents reach the coordinator: `decision` answers a question about an
 * in-doubt gid; `waiting` hears of a replica parked at a two-phase packet;
 * `stream` tells whether the stream is paused.
 */
export function coordinatorSubject(slot: string, what: 'decision' | 'waiting' | 'stream'): string {
  return `lockstep.${slot}.coordinator.${what}`;
}

/** The coordinator's answer on `stream`: whether `lockstep pause` holds (nothing is published). */
export interface StreamStanding {
  readonly paused: boolean;
}

/** An agent's question on `stream`: a fresh nonce, which the signed answer names. */
export interface StreamQuestion {
  readonly nonce?: string;
}

/** A two-phase packet a replica waits at, as its agent tells the coordinator. */
export interface WaitingPacket {
  readonly version: number;
  readonly lsn: Lsn;
  readonly rows: number;
  readonly whole: boolean;
}

/** *prepare(v)*: deliver packets `from..to` as one prepared transaction named `gid`. */
export interface WirePrepare {
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
export type WireVote =
  | { readonly vote: 'yes' }
  /** Behind `from - 1`: it holds only `at`, and needs the delta first. */
  | { readonly vote: 'needs-update'; readonly at: number }
  | { readonly vote: 'no'; readonly reason: string };

/** What the coordinator sends an agent: its epoch, and the verb's arguments. */
export interface AgentRequest {
  readonly epoch: number;
  readonly request?: WirePrepare;
  readonly outcome?: 'committed' | 'rolled-back';
  readonly gid?: string;
  readonly stream?: string;
}

/** An agent's question to the coordinator about a gid prepared on its replica. */
export interface DecisionQuestion {
  readonly gid: string;
  readonly replica: string;
}

/** Every reply: a value, or why the request was refused (`deposed`: the sender's epoch is old). */
export type WireReply<T> =
  | { readonly ok: true; readonly value: T; readonly at?: number | null }
  | {
      readonly ok: false;
      readonly error: string;
      readonly deposed?: boolean;
      /** A COMMIT of a gid rolled back outside lockstep on the replica: never retried. */
      readonly notLanded?: 'stream' | 'migration';
    };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeWire(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses a message body; throws on anything that is not a JSON object. */
export function decodeWire<T>(data: Uint8Array): T {
  const value: unknown = JSON.parse(decoder.decode(data));
  if (value === null || typeof value !== 'object') throw new Error('not a lockstep round message');
  return value as T;
}

/** The text of a refusal sent to a coordinator whose epoch is older than one already seen. */
export function deposedRefusal(epoch: number, newest: number): string {
  return `deposed coordinator: epoch ${epoch} is older than ${newest}`;
}
