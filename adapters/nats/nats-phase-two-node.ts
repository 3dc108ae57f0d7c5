import { NotLandedError } from '../../plugin/ports/lockstep-error.js';
import type { PhaseTwoNode, PreparedGid } from '../../plugin/ports/phase-two-node.js';
import { type AgentAddress, askAgent } from './nats-round-participant.js';

/**
 * Phase two on a replica through its agent (the `PhaseTwoNode` port over NATS
 * requests): the agent runs COMMIT/ROLLBACK PREPARED on its replica. No
 * answer in time is a failure the round driver and recovery retry.
 */
export class NatsPhaseTwoNode implements PhaseTwoNode {
  constructor(private readonly address: AgentAddress) {}

  get node(): string {
    return this.address.replica;
  }

  async list(stream: string): Promise<ReadonlyArray<PreparedGid>> {
    return this.ask<PreparedGid[]>('list', { stream });
  }

  async commit(gid: string): Promise<void> {
    const reply = await askAgent(this.address, 'commit', { gid }, this.address.timeouts.phaseTwoMs);
    // Rolled back outside lockstep on the replica: the caller stops retrying.
    if (!reply.ok && reply.notLanded) throw new NotLandedError(this.node, gid, reply.notLanded);
    if (!reply.ok) throw new Error(`agent of ${this.node}: ${reply.error}`);
  }

  async rollback(gid: string): Promise<void> {
    await this.ask('rollback', { gid });
  }

  /** The bus connection is the publisher's: nothing of its own to close. */
  async close(): Promise<void> {}

  private async ask<T>(verb: 'list' | 'commit' | 'rollback', body: Record<string, unknown>) {
    const reply = await askAgent<T>(this.address, verb, body, this.address.timeouts.phaseTwoMs);
    if (!reply.ok) throw new Error(`agent of ${this.node}: ${reply.error}`);
    return reply.value;
  }
}
