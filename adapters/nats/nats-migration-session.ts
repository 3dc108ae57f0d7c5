import type { Logger } from 'pino';
import { DeposedError, LockstepError } from '../../plugin/ports/lockstep-error.js';
import type {
  MigrationHistoryEntry,
  MigrationNodeSession,
  MigrationPrepare,
  ReplicaMigrationHistory,
} from '../../plugin/ports/migration-session.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { probeAgent, whileAgentAnswers } from './agent-liveness.js';
import { type AgentAddress, askAgent } from './nats-round-participant.js';

/**
 * A replica's side of a migration round through its agent (the
 * `MigrationNodeSession` port over NATS requests). The prepare names only
 * the gid: the agent runs the work the stream vouched for at the barrier.
 * No answer in time, or no agent, is a failure: the round votes no. The
 * prepare may take minutes (the agent catches its replica up first), but an
 * agent that stops answering probes for `silenceMs` (frozen: SIGSTOP, a
 * paused VM) fails it at once: the primary's part of the round keeps the
 * migrated table locked until the round ends.
 */
export class NatsMigrationSession implements MigrationNodeSession {
  constructor(
    private readonly address: AgentAddress,
    private readonly liveness: { readonly silenceMs: number; readonly log: Logger },
  ) {}

  get node(): string {
    return this.address.replica;
  }

  async prepare(options: MigrationPrepare): Promise<void> {
    const { gid } = options;
    await whileAgentAnswers(
      this.ask('migrate', { gid }, this.address.timeouts.prepareMs).then(() => undefined),
      (timeoutMs) => probeAgent(this.address, timeoutMs, gid),
      this.liveness.silenceMs,
      { silent: (silentMs) => this.silent(gid, silentMs), lost: () => this.lost(gid) },
    );
  }

  private silent(gid: string, silentMs: number): Error {
    this.liveness.log.warn(
      { replica: this.node, gid, silentMs, event: 'agent-unresponsive' },
      'agent stopped answering while it prepared: the round is refused',
    );
    return new LockstepError({
      node: this.node,
      problem: `the agent of ${this.node} stopped answering while it prepared migration ${gid} (nothing for ${silentMs} ms; the limit is twoPhase.voteTimeoutMs plus the time to leave a hung NATS server, ${this.liveness.silenceMs} ms): the round is rolled back`,
      fix: `see why lockstep agent --replica ${this.node} is stopped (SIGSTOP, a paused VM, an overloaded host), then run this again`,
      setting: 'twoPhase.voteTimeoutMs',
    });
  }

  private lost(gid: string): Error {
    this.liveness.log.warn(
      { replica: this.node, gid, event: 'agent-request-lost' },
      'agent runs but has no such migration: the round is refused',
    );
    return new LockstepError({
      node: this.node,
      problem: `the agent of ${this.node} runs but has migration ${gid} neither in hand nor prepared: the request or its answer was lost on the bus (a NATS server changed meanwhile); the round is rolled back`,
      fix: 'run this again',
      setting: 'connection',
    });
  }

  appliedLsn(): Promise<Lsn | null> {
    return this.ask<Lsn | null>('applied', {}, this.address.timeouts.phaseTwoMs);
  }

  async commitBarrier(): Promise<Lsn> {
    throw new Error(`${this.node} is a replica: the barrier is committed on the primary`);
  }

  async history(): Promise<MigrationHistoryEntry[]> {
    throw new Error(`${this.node} is a replica: the history is read on the primary`);
  }

  /** With `bus`, `migrate status` reads a replica's history from its agent's report, not here. */
  async replicaHistory(): Promise<ReplicaMigrationHistory> {
    throw new Error(`${this.node} is a replica: its history is read from its agent's report`);
  }

  private async ask<T>(verb: 'migrate' | 'applied', body: Record<string, unknown>, ms: number) {
    let reply: Awaited<ReturnType<typeof askAgent<T>>>;
    try {
      reply = await askAgent<T>(this.address, verb, body, ms);
    } catch (error) {
      if (error instanceof DeposedError)
        throw new LockstepError({
          node: this.node,
          problem:
            'its agent refused the request: a newer sidecar took over the stream while this ran',
          fix: 'run this again: it reads the newer epoch at its start',
          cause: error,
        });
      throw new LockstepError({
        node: this.node,
        problem: `its agent did not answer: ${(error as Error).message}`,
        fix: `start lockstep agent --replica ${this.node} (or see why it hangs), then run this again`,
        setting: 'connection',
        cause: error,
      });
    }
    if (!reply.ok) throw new Error(reply.error);
    return reply.value;
  }
}
