import { compareLsn, type Lsn, lsnDistance, lsnToBigInt } from '../protocol/index.js';
import type { ReplicaAgent } from '../replica/replica-agent.js';
import type { SidecarParts } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';
import type { StaleResync } from './stale-resync.js';

/**
 * Keeps the slot where every replica can still be served: confirms it only up
 * to the lowest position every non-stale replica (and every join hold) keeps,
 * and marks stale the replicas it can no longer serve, or that hold too much.
 */
export class SlotKeeper {
  /** How often the slot's position was read for a resume point (the `slot-read` fault point). */
  private slotReads = 0;

  constructor(
    private readonly parts: SidecarParts,
    private readonly state: SidecarState,
    private readonly resync: StaleResync,
    /** A replica is being replaced: the slot waits for it. */
    private readonly replacing: () => boolean,
  ) {}

  /** The lowest durable position of the replicas that are not stale; null while one is unknown. */
  confirmable(): Lsn | null {
    const { state } = this;
    // A replica being replaced is out of the list for a moment: its position still counts.
    // Holds unread (or unreadable): a replica being copied may need any of the WAL.
    if (this.replacing() || state.joinHolds === null) return null;
    let low: Lsn | null = null;
    for (const hold of state.joinHolds) if (!low || compareLsn(hold, low) < 0) low = hold;
    for (const hold of state.resyncing.values()) if (!low || compareLsn(hold, low) < 0) low = hold;
    for (const agent of state.agents) {
      if (state.stale.has(agent.name)) continue;
      const position = state.positionOf(agent);
      if (!position) return null; // a replica we know nothing of yet: hold everything
      if (!low || compareLsn(position.lsn, low) < 0) low = position.lsn;
    }
    return low;
  }

  /** Reads attach's join holds; unreadable, none is known and nothing is confirmed (fail closed). */
  async readJoinHolds(): Promise<void> {
    try {
      this.state.joinHolds = await this.parts.status.joinHolds();
    } catch (error) {
      if (this.state.joinHolds !== null)
        // The slot is not confirmed until they are read.
        this.parts.log.warn({ err: (error as Error).message }, 'cannot read the join holds');
      this.state.joinHolds = null;
    }
  }

  /** The slot may release WAL up to {@link confirmable}. */
  confirmSlot(): void {
    const low = this.confirmable();
    if (!low || (this.state.confirmed && compareLsn(low, this.state.confirmed) <= 0)) return;
    this.state.confirmed = low;
    this.state.stream?.confirm(low);
  }

  /**
   * A replica whose position is before the slot's confirmed point cannot be
   * served any more (that WAL is gone, and re-reading would number packets
   * wrongly): it is stale and stops until it is resynced. Fails closed: when
   * the slot cannot be read, this throws and no stream starts.
   */
  async markGone(): Promise<void> {
    this.parts.twoPhase.fault?.('slot-read', ++this.slotReads);
    await this.markGoneAt(await this.parts.status.slotConfirmedLsn());
  }

  /** {@link markGone} against a confirmed point already read (null: no slot, nothing to compare). */
  async markGoneAt(confirmed: Lsn | null): Promise<void> {
    // No slot: START_REPLICATION fails and says why; nothing to compare with.
    if (!confirmed) return;
    for (const agent of this.state.agents) {
      if (!agent.position || this.state.stale.has(agent.name)) continue;
      if (lsnToBigInt(agent.position.lsn) + 1n < lsnToBigInt(confirmed)) {
        await this.markStaleAgent(agent, "its position is before the slot's confirmed point", {
          lsn: agent.position.lsn,
          slotConfirmed: confirmed,
        });
      }
    }
  }

  /** Marks a replica stale: durably first, then it stops holding WAL (and resyncs with `resync: auto`). */
  private async markStaleAgent(
    agent: ReplicaAgent,
    why: string,
    fields: Record<string, unknown>,
    fix = 'lockstep attach --resync, or resync: "auto"',
  ): Promise<void> {
    const { state } = this;
    await this.parts.status.markStale(agent.name);
    state.stale.add(agent.name);
    if (state.rewindBy === agent.name) state.rewindTo = null;
    agent.stop();
    state.statusDirty = true;
    this.parts.log.error(
      {
        replica: agent.name,
        event: 'replica-stale',
        reason: why,
        ...fields,
        fix: this.parts.resync ? 'resyncing it now (resync: auto)' : fix,
      },
      'replica is stale: it no longer holds WAL',
    );
    this.resync.start(agent.name);
    if (!this.parts.resync && state.agents.every((a) => state.stale.has(a.name))) {
      // Nothing left to apply to: free the lock for lockstep attach --resync.
      state.allStale = true;
      state.lockCheck.notify();
    }
  }

  /**
   * Marks stale the halted replicas further behind than maxLagBytes, and the
   * busy ones (a statement running for ever holds WAL as a replica down does).
   */
  async markStale(): Promise<void> {
    const { state } = this;
    const holding = state.agents.filter(
      (a) =>
        (a.state === 'halted' || a.state === 'unresponsive' || a.busy) && !state.stale.has(a.name),
    );
    if (holding.length === 0) return;
    // Just read by observe(); asked again only if that failed.
    const current = state.observed.walLsn ?? (await this.parts.status.currentWalLsn());
    for (const agent of holding) {
      // Read once: it may have answered while the WAL position was read.
      const busy = agent.busy;
      if (!busy && agent.state !== 'halted' && agent.state !== 'unresponsive') continue;
      const position = state.positionOf(agent);
      // No position (never placed by attach, or never reached): it holds the slot where it stands.
      const from = position?.lsn ?? state.confirmed ?? (await this.parts.status.slotConfirmedLsn());
      const behind = from ? lsnDistance(from, current) : 0;
      if (behind <= this.parts.maxLagBytes) continue;
      const fields = { lagBytes: behind, maxLagBytes: this.parts.maxLagBytes };
      if (position)
        await this.markStaleAgent(
          agent,
          busy
            ? 'busy with a long statement, further behind than maxLagBytes'
            : 'further behind than maxLagBytes',
          fields,
        );
      else
        await this.markStaleAgent(
          agent,
          'it has no position in the stream, and the WAL held for it passed maxLagBytes',
          fields,
          'lockstep attach: it copies the replica and places it in the stream',
        );
    }
  }

  /**
   * A replica never placed in the stream whose stale mark `lockstep attach`
   * ended (it is about to copy and place it): it holds the slot again.
   */
  async followStaleMarks(): Promise<void> {
    const { state } = this;
    const unplaced = state.agents.filter(
      (a) => state.stale.has(a.name) && !state.resyncing.has(a.name) && !state.positionOf(a),
    );
    if (unplaced.length === 0) return;
    const marked = await this.parts.status.staleReplicas();
    for (const agent of unplaced) {
      if (marked.has(agent.name)) continue;
      await agent.waitStopped();
      if (state.stopping || !state.agents.includes(agent)) return;
      state.stale.delete(agent.name);
      agent.forget();
      state.tasks.push(agent.run());
      state.statusDirty = true;
      // It holds the slot again until attach places it.
      this.parts.log.info(
        { replica: agent.name, event: 'replica-unmarked' },
        'attach ended the stale mark of the replica',
      );
    }
  }
}
