import type { Lsn } from '../protocol/index.js';
import { compareLsn } from '../protocol/index.js';
import type { ReplicaAgent } from '../replica/replica-agent.js';
import type { SidecarParts } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';

/** `resync: "auto"`: a stale replica is copied anew in the background while the slot is held for it. */
export class StaleResync {
  constructor(
    private readonly parts: SidecarParts,
    private readonly state: SidecarState,
  ) {}

  /** With `resync: "auto"`, copies a stale replica anew in the background. */
  start(replica: string): void {
    const agent = this.state.agents.find((a) => a.name === replica);
    if (this.parts.resync && agent) this.state.tasks.push(this.resyncAgent(agent));
  }

  /** The lowest position of the healthy replicas other than `agent`: where the slot is held. */
  private holdFor(agent: ReplicaAgent): Lsn | null {
    let hold: Lsn | null = null;
    for (const other of this.state.agents) {
      if (other === agent || this.state.stale.has(other.name) || !other.position) continue;
      if (!hold || compareLsn(other.position.lsn, hold) < 0) hold = other.position.lsn;
    }
    return hold;
  }

  /** resync: auto — copies the replica anew while the slot is held, then lets it catch up. */
  private async resyncAgent(agent: ReplicaAgent): Promise<void> {
    const { state } = this;
    let delay = 1_000;
    while (!state.stopping) {
      // Removed from the configuration: its resync ends, and with it the WAL held for it.
      if (!state.agents.includes(agent)) return this.cancelled(agent);
      // Hold the slot at the lowest healthy position: the resync restarts the replica from there.
      const hold = this.holdFor(agent);
      if (!hold) {
        await state.backoff(delay);
        continue;
      }
      state.resyncing.set(agent.name, hold);
      state.statusDirty = true;
      try {
        await agent.waitStopped();
        await (this.parts.resync as NonNullable<SidecarParts['resync']>)(agent.name, state.stale);
        // Deactivated meanwhile: the next activation starts the agent (its stale mark is gone).
        if (state.stopping) return;
        // Removed from the configuration meanwhile: its copy was not placed (attach checks).
        if (!state.agents.includes(agent)) return this.cancelled(agent);
        state.stale.delete(agent.name);
        state.lastPositions.delete(agent.name);
        // Its copy is a new start: nothing it knew of rounds or positions holds any more.
        agent.forget();
        this.parts.log.info(
          { replica: agent.name, event: 'replica-resynced' },
          'replica resynced: catching up from its copy',
        );
        state.tasks.push(agent.run());
        return;
      } catch (error) {
        if (!state.agents.includes(agent)) return this.cancelled(agent);
        this.parts.log.error(
          { replica: agent.name, err: (error as Error).message, event: 'resync-failed' },
          'resync failed: retrying',
        );
        await state.backoff(delay);
        delay = Math.min(delay * 2, 30_000);
      } finally {
        // Replaced meanwhile: the hold under its name is the new agent's business.
        if (state.agents.includes(agent)) state.resyncing.delete(agent.name);
        state.statusDirty = true;
      }
    }
  }

  private cancelled(agent: ReplicaAgent): void {
    this.parts.log.info(
      { replica: agent.name, event: 'resync-cancelled' },
      'resync cancelled: the replica was removed',
    );
  }
}
