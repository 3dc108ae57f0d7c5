import type { NatsConnection } from '@nats-io/transport-node';
import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import {
  type AgentVerb,
  agentSubject,
  encodeWire,
  type WirePrepare,
  type WireReply,
  type WireVote,
} from '../../plugin/protocol/round-subjects.js';
import type { BusSigner } from './bus-signing.js';
import { whileAgentProgresses } from './prepare-progress.js';
import { askOverBus, requestSignature } from './round-requests.js';

/** Longest a prepare request waits for its vote while the agent reports progress (ms). */
const PREPARE_CAP_MS = 3_600_000;

/** How long the coordinator waits for an agent, per kind of request (ms). */
export interface AgentRequestTimeouts {
  /**
   * A prepare (the agent applies the round's packets and prepares them
   * first): this long beyond the round's own vote deadline, which grows with
   * its rows, so the round's deadline decides first, never a fixed cap.
   */
  readonly prepareMs: number;
  /** A delta: the agent catching up to the round's first version. */
  readonly deltaMs: number;
  /** Phase two and listing prepared gids. */
  readonly phaseTwoMs: number;
}

/** Where a coordinator reaches one agent: the slot, the replica, and the fencing epoch it sends. */
export interface AgentAddress {
  readonly nc: NatsConnection;
  readonly slot: string;
  readonly replica: string;
  /** The coordinator's activation epoch; null while it holds no coordinator lock. */
  epoch(): number | null;
  readonly timeouts: AgentRequestTimeouts;
  /** Signs every request: agents obey only `lockstep run`'s key. */
  readonly signer: BusSigner;
}

/**
 * Sends `verb` to the agent with the coordinator's epoch. Throws
 * `DeposedError` when this process is not the coordinator, or when the agent
 * refused the epoch as older than one it has seen (a successor took over
 * before this process noticed): the round leaves what it asked for to the
 * successor, whose recovery settles it, instead of retrying a refusal.
 */
export async function askAgent<T>(
  address: AgentAddress,
  verb: AgentVerb,
  body: Record<string, unknown>,
  timeoutMs: number,
): Promise<WireReply<T>> {
  const epoch = address.epoch();
  if (epoch === null) throw new DeposedError(null);
  const reply = await askOverBus<T>(
    address.nc,
    agentSubject(address.slot, address.replica, verb),
    { epoch, ...body },
    timeoutMs,
    address.signer,
  );
  if (!reply.ok && reply.deposed === true) throw new DeposedError(epoch);
  return reply;
}

/**
 * A replica's agent as a round participant (the coordinator's
 * `RoundParticipant` port), over NATS requests: a timeout, no agent serving
 * the replica, or a refusal is a `no` vote, never a hang.
 */
export class NatsRoundParticipant {
  /** The version the agent last said its replica holds (null until it answered once). */
  heldVersion: number | null = null;
  /** The progress of its prepare the agent last reported (see `RoundParticipant.progress`). */
  private reported = -1;
  /** The gid of the prepare outstanding (null: none). */
  private preparing: string | null = null;

  constructor(private readonly address: AgentAddress) {}

  get name(): string {
    return this.address.replica;
  }

  /**
   * Applies and prepares at the agent. Without progress, the answer is
   * waited for the round's vote deadline plus `prepareMs`; while the agent
   * reports its replica answering the apply, up to an hour.
   */
  async prepare(request: WirePrepare, deadlineMs = 0): Promise<WireVote> {
    const limitMs = deadlineMs + this.address.timeouts.prepareMs;
    this.reported = -1;
    this.preparing = request.gid;
    try {
      const reply = await whileAgentProgresses(
        askAgent<WireVote>(this.address, 'prepare', { request }, Math.max(limitMs, PREPARE_CAP_MS)),
        (timeoutMs) => this.probe(request.gid, timeoutMs),
        limitMs,
        (progress) => {
          if (this.preparing === request.gid) this.reported = progress;
        },
        // Often enough that the round's own deadline sees progress before it passes.
        deadlineMs > 0 ? Math.min(limitMs, deadlineMs) / 4 : limitMs / 4,
      );
      if (reply.ok && reply.at !== undefined) this.heldVersion = reply.at;
      if (!reply.ok) return { vote: 'no', reason: reply.error };
      return reply.value;
    } catch (error) {
      return { vote: 'no', reason: `agent of ${this.name}: ${(error as Error).message}` };
    }
  }

  progress(gid: string): number {
    return gid === this.preparing ? this.reported : -1;
  }

  /** The agent's progress on the prepare it works on; undefined without an answer (or from an older agent). */
  private async probe(gid: string, timeoutMs: number): Promise<number | undefined> {
    try {
      const reply = await askAgent<{ progress?: number }>(
        this.address,
        'alive',
        { gid },
        timeoutMs,
      );
      return reply.ok ? reply.value?.progress : undefined;
    } catch {
      return undefined;
    }
  }

  async delta(request: WirePrepare): Promise<void> {
    const reply = await askAgent<null>(
      this.address,
      'delta',
      { request },
      this.address.timeouts.deltaMs,
    );
    if (reply.ok && reply.at !== undefined) this.heldVersion = reply.at;
    if (!reply.ok) throw new Error(reply.error);
  }

  /** Tells the agent phase two is done on its node (best effort: its own phase two told it already). */
  decided(request: WirePrepare, outcome: 'committed' | 'rolled-back'): void {
    const epoch = this.address.epoch();
    if (epoch === null) return;
    if (outcome === 'committed') this.heldVersion = Math.max(this.heldVersion ?? 0, request.to);
    const { nc, slot, replica, signer } = this.address;
    const subject = agentSubject(slot, replica, 'decided');
    const data = encodeWire({ epoch, request, outcome });
    try {
      nc.publish(subject, data, { headers: requestSignature(signer, subject, data) });
    } catch {
      // A closed connection: the agent learns it from its own phase two or its question.
    }
  }
}
