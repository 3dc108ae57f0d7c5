import { DeposedError, LockstepError } from '../../plugin/ports/lockstep-error.js';
import type {
  MigrationHistoryEntry,
  MigrationNodeSession,
  MigrationPrepare,
} from '../../plugin/ports/migration-session.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { type AgentAddress, askAgent } from './nats-round-participant.js';

/**
 * A replica's side of a migration round through its agent (the
 * `MigrationNodeSession` port over NATS requests). The prepare names only
 * the gid: the agent runs the work the stream vouched for at the barrier.
 * No answer in time, or no agent, is a failure: the round votes no.
 */
export class NatsMigrationSession implements MigrationNodeSession {
  constructor(private readonly address: AgentAddress) {}

  get node(): string {
    return this.address.replica;
  }

  async prepare(options: MigrationPrepare): Promise<void> {
    await this.ask('migrate', { gid: options.gid }, this.address.timeouts.prepareMs);
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
