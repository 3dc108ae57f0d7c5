import type { Logger } from 'pino';
import type { FaultHook } from '../coordinator/fault-point.js';
import { presumeAbort } from '../coordinator/recover-prepared.js';
import type {
  DecisionStore,
  PhaseTwoNode,
  RoundParticipant,
} from '../coordinator/round-participant.js';
import {
  type CoordinatorOptions,
  TwoPhaseCoordinator,
  type TwoPhasePacket,
} from '../coordinator/two-phase-coordinator.js';
import type {
  DecisionQuestion,
  StreamStanding,
  WaitingPacket,
  WireReply,
} from '../protocol/round-subjects.js';
import { Signal } from '../support/signal.js';

/** What two-phase rounds over the bus are built from (the composition root wires the adapters). */
export interface BusRoundsParts {
  readonly stream: string;
  /** One per configured replica: its agent, over the bus. */
  readonly participants: readonly RoundParticipant[];
  /** Phase two per replica, through its agent. */
  readonly nodes: ReadonlyMap<string, PhaseTwoNode>;
  /** The decision log on the primary, fenced by the coordinator lock's epoch. */
  readonly decisions: DecisionStore;
  readonly options: CoordinatorOptions;
  readonly log: Logger;
  readonly fault?: FaultHook;
  /** The coordinator lock's epoch; null while this process does not hold it. */
  epoch(): number | null;
  /** Whether the publisher is paused (`lockstep pause`), for agents that ask. */
  paused(): boolean;
  /** Starts answering agents (in-doubt gids, replicas waiting at a round, whether paused). */
  serve(handlers: {
    /** Null: not the coordinator, no reply (the lock holder answers). */
    decision(question: DecisionQuestion): Promise<WireReply<'commit' | 'abort'> | null>;
    waiting(packet: WaitingPacket): void;
    stream(): Promise<WireReply<StreamStanding> | null>;
  }): () => Promise<void>;
  /** Closes the bus connection the parts use. */
  close(): Promise<void>;
}

/**
 * `lockstep run` with `bus`: the same {@link TwoPhaseCoordinator} as in
 * process, its participants the replicas' agents. The decision stays the
 * durable row on the primary, written before the first COMMIT PREPARED; an
 * agent with an in-doubt gid asks here, and is answered from the decision
 * log (presumed abort, the abort written first).
 */
export class BusRounds {
  readonly coordinator: TwoPhaseCoordinator;
  private unserve: (() => Promise<void>) | null = null;
  private stopping = false;
  private readonly retry = new Signal();
  private starting: Promise<void> = Promise.resolve();

  constructor(private readonly parts: BusRoundsParts) {
    this.coordinator = new TwoPhaseCoordinator({
      stream: parts.stream,
      participants: () => parts.participants,
      nodes: parts.nodes,
      decisions: parts.decisions,
      log: parts.log,
      options: parts.options,
      fault: parts.fault,
      epoch: () => parts.epoch(),
      onDeposed: () =>
        parts.log.error(
          { event: 'deposed' },
          'deposed: another process holds the coordinator lock',
        ),
    });
  }

  /** Once the coordinator lock is held: answers agents, recovers what a crash left prepared, runs rounds. */
  start(): Promise<void> {
    this.unserve = this.parts.serve({
      decision: (question) => this.decision(question),
      waiting: (packet) => this.offer(packet),
      stream: async () => this.standing(),
    });
    this.starting = this.startCoordinator();
    return this.starting;
  }

  /**
   * Starts the coordinator, again and again while its recovery or its read of
   * the decision log fails (the primary restarting, an agent's session cut):
   * as in process, a failed activation waits and tries again, never ends
   * the process.
   */
  private async startCoordinator(): Promise<void> {
    const { log, options } = this.parts;
    for (let delay = options.retryInitialMs; !this.stopping; ) {
      try {
        await this.coordinator.start();
        return;
      } catch (error) {
        if (this.stopping) return;
        log.warn(
          { err: (error as Error).message, retryMs: delay, event: 'rounds-start-failed' },
          'two-phase rounds cannot start: retrying',
        );
        await this.retry.wait(delay);
        delay = Math.min(delay * 2, options.retryMaxMs);
      }
    }
  }

  /** A two-phase packet is on the bus (published now, or an agent waits at it). */
  offer(packet: TwoPhasePacket): void {
    this.coordinator.offer(packet);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.retry.notify();
    // Closing the connections under a start in flight would fail it for nothing.
    await this.starting;
    await this.coordinator.stop();
    await this.unserve?.();
    await this.parts.decisions.close();
    await this.parts.close();
  }

  /**
   * Only the coordinator answers for the stream: a deposed one's pause may be old. Others stay
   * silent rather than refuse: an agent's request takes the first reply, which must be the holder's.
   */
  private standing(): WireReply<StreamStanding> | null {
    if (this.parts.epoch() === null) return null;
    return { ok: true, value: { paused: this.parts.paused() } };
  }

  private async decision(
    question: DecisionQuestion,
  ): Promise<WireReply<'commit' | 'abort'> | null> {
    const { gid, replica } = question;
    // Silent, as for the stream: a standby's refusal would reach the agent before the holder's answer.
    if (this.parts.epoch() === null) return null;
    const { decisions, stream, log } = this.parts;
    // The round still voting decides for itself (its vote deadline bounds it): a presumed abort
    // now would abort every round whose votes outlast an agent's recovery interval.
    const held = this.coordinator.held;
    if (held?.gid === gid && held.phase === 'voting')
      return { ok: false, error: `round ${gid} is still collecting votes: not decided yet` };
    const decision =
      (await decisions.read([gid])).get(gid) ??
      (await presumeAbort(stream, gid, [replica], decisions));
    log.info({ gid, replica, decision, event: 'decision-asked' }, 'an agent asked for a decision');
    return { ok: true, value: decision };
  }
}
