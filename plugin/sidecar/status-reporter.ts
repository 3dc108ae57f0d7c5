import { slotLoss } from '../ports/slot-health.js';
import { lsnDistance } from '../protocol/index.js';
import { shownReplicaState } from '../protocol/shown-replica-state.js';
import type { ReplicaAgent } from '../replica/replica-agent.js';
import type { ReplicaSnapshot, SidecarParts, SidecarSnapshot } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';

/**
 * What the sidecar tells about itself: the status rows on the primary
 * (`lockstep status`), and snapshots for `/metrics` and `/readyz`, with the
 * figures it reads from the nodes every few seconds.
 */
export class StatusReporter {
  /** The in-doubt listing in progress, if one is. */
  private listing: Promise<void> | null = null;

  constructor(
    private readonly parts: SidecarParts,
    private readonly state: SidecarState,
  ) {}

  /** Reads what metrics report from the nodes: WAL position, slot retention, in-doubt gids. */
  async observe(): Promise<void> {
    const { state } = this;
    // The slot first and on its own: a frozen replica (in-doubt listing) must not delay its loss.
    const slot = await this.parts.status.slotHealth().catch(() => state.observed.slot);
    const walLsn = await this.parts.status.currentWalLsn().catch(() => null);
    state.observed = { ...state.observed, walLsn, slot };
    this.listInDoubt();
    if (slot && slotLoss(slot) && !state.slotLost) {
      // Nothing can stream from this slot again: stand by (releasing the lock) until it is recreated.
      state.slotLost = true;
      state.lockCheck.notify();
    }
  }

  /**
   * Lists in-doubt gids on every node beside the caller: a replica that does
   * not answer holds the listing up to controlTimeoutMs, and with it only the
   * in-doubt figures (the last ones stay), not the slot's confirmation, stale
   * marks and status of the loop that asks.
   */
  private listInDoubt(): void {
    if (this.listing) return;
    const { state } = this;
    this.listing = state.coordinator
      .inDoubt()
      .catch(() => null)
      .then((inDoubt) => {
        state.observed = { ...state.observed, inDoubt };
      })
      .finally(() => {
        this.listing = null;
      });
  }

  /** The sidecar now: per replica state, versions, lag and counts; two-phase rounds. */
  snapshot(): SidecarSnapshot {
    const { state } = this;
    let headVersion = state.head.version;
    for (const a of state.agents) headVersion = Math.max(headVersion, a.position?.version ?? 0);
    const slot = state.observed.slot;
    const now = Date.now();
    // The lock's session ending (terminated, cut) ends activity at once, before the loops stop.
    const active = state.active && this.parts.lock.held;
    return {
      active,
      streaming: state.streaming,
      paused: state.pausedSince !== null,
      headVersion,
      slotRetainedBytes: slot?.retainedBytes ?? null,
      slot,
      slotLost: slot ? slotLoss(slot) : null,
      twoPhase: state.coordinator.status(),
      // Only the coordinator lists them: a standby's last count would be stale.
      inDoubt: active ? state.observed.inDoubt : null,
      replicas: state.agents.map((a) => this.replicaSnapshot(a, headVersion, now)),
    };
  }

  /** One replica's part of {@link snapshot}. */
  private replicaSnapshot(a: ReplicaAgent, headVersion: number, now: number): ReplicaSnapshot {
    const { state } = this;
    const position = state.positionOf(a);
    // Paused, nothing new is read: the head is old, so lag in versions is unknown (lagBytes still tells).
    const lagVersions =
      position && !state.pausedSince ? Math.max(0, headVersion - position.version) : null;
    let lagSeconds: number | null = lagVersions === 0 ? 0 : null;
    if (position && lagVersions) {
      const seq = state.window.locate(position.version);
      const next = seq === null ? undefined : state.window.at(seq);
      if (next) lagSeconds = Math.max(0, (now - Date.parse(next.header.commitTime)) / 1000);
    }
    const wal = state.observed.walLsn;
    return {
      name: a.name,
      state: this.replicaState(a),
      version: position?.version ?? null,
      lagVersions,
      lagBytes: position && wal ? Math.max(0, lsnDistance(position.lsn, wal)) : null,
      lagSeconds,
      packetsApplied: a.packetsApplied,
      rowsApplied: a.rowsApplied,
      applyErrors: a.applyErrors,
      commitsNotLanded: a.commitsNotLanded,
      error: a.lastError?.message ?? null,
    };
  }

  /** Current state of each replica as reported to status. */
  replicaState(agent: ReplicaAgent): string {
    const { state } = this;
    // Without its slot no replica can catch up: each needs a fresh copy, whatever it last did.
    if (state.observed.slot && slotLoss(state.observed.slot)) return 'stale';
    if (state.resyncing.has(agent.name)) return 'resyncing';
    if (state.stale.has(agent.name)) return 'stale';
    if (!agent.attached) return 'not-attached';
    return shownReplicaState(agent.state, state.pausedSince !== null);
  }

  /** Writes every replica's row and the stream's head to the primary. */
  async writeStatus(): Promise<void> {
    const { state } = this;
    await this.parts.status.write(
      state.agents.map((a) => {
        const position = state.positionOf(a);
        return {
          replica: a.name,
          state: this.replicaState(a),
          version: position?.version ?? null,
          lsn: position?.lsn ?? null,
          error: a.lastError?.message ?? null,
          databaseId: a.databaseId,
        };
      }),
      { ...state.head, twoPhase: state.coordinator.status() },
    );
  }
}
