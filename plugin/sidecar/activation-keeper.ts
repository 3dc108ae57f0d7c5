import { hostname } from 'node:os';
import type { TwoPhaseCoordinator } from '../coordinator/two-phase-coordinator.js';
import { slotLoss } from '../ports/slot-health.js';
import { attemptCoordinatorLock } from './lock-attempt.js';
import { PauseFollower } from './pause-follower.js';
import type { SidecarParts } from './sidecar-parts.js';
import type { SidecarState } from './sidecar-state.js';

/** How often the active sidecar checks that it still holds the coordinator lock (ms). */
const LOCK_CHECK_MS = 2_000;

/** What an activation starts besides the agents. */
export interface ActivationHooks {
  /** A coordinator for the new activation (under its epoch). */
  newCoordinator(): TwoPhaseCoordinator;
  /** Resyncs a replica found stale (with `resync: "auto"`). */
  startResync(replica: string): void;
  /** The activation's loops: the stream pump and housekeeping. */
  loops(): Promise<unknown>[];
}

/**
 * One active sidecar per stream: waits as a standby while another holds the
 * coordinator lock (or the slot is lost, or every replica is stale), becomes
 * active under a new epoch, checks the lock while active and stands by again
 * when it is lost. Also follows `lockstep pause` and `lockstep resume`.
 */
export class ActivationKeeper {
  private lockWatch: Promise<void> = Promise.resolve();
  /** The pause listener runs across activations. */
  private readonly pause: PauseFollower;

  constructor(
    private readonly parts: SidecarParts,
    private readonly state: SidecarState,
    private readonly hooks: ActivationHooks,
  ) {
    this.pause = new PauseFollower({
      read: () => parts.status.pausedSince(),
      signal: parts.pauses,
      log: parts.log,
      changed: (since) => {
        state.pausedSince = since;
        state.statusDirty = true;
        // A pause ends the stream; a resume starts it again.
        if (since) state.interrupt.notify();
        else state.resumed.notify();
      },
    });
  }

  /** Becomes active (standing by as long as it must); false when stopped meanwhile. */
  async start(): Promise<boolean> {
    // An activation that fails half-way (the primary restarting meanwhile) stands by and
    // tries again, as after a lost lock: it never ends the process.
    while (!(await this.reactivate())) if (this.state.closing) return false;
    this.lockWatch = this.watchLock();
    return true;
  }

  /** Resolves once the lock check has ended (after stop). */
  watched(): Promise<void> {
    return this.lockWatch;
  }

  /** Waits until this process holds the coordinator lock; false when stopped meanwhile. */
  private async standBy(): Promise<boolean> {
    const { parts } = this;
    let announced = false;
    let lossAnnounced = false;
    let staleAnnounced = false;
    for (;;) {
      if (this.state.closing) return false;
      // A lost slot cannot stream: the lock is left free for lockstep attach --resync all.
      const loss = await this.slotLossNow();
      if (loss) {
        if (!lossAnnounced)
          parts.log.error(
            {
              slot: this.state.observed.slot?.name,
              reason: loss.reason,
              fix: loss.fix,
              event: 'slot-lost',
            },
            'the slot can no longer stream',
          );
        lossAnnounced = true;
        await this.idle(2_000);
        continue;
      }
      // Every replica stale and resync manual: nothing to run; the lock stays free for attach --resync.
      if (await this.everyReplicaStale()) {
        if (!staleAnnounced)
          parts.log.error(
            {
              fix: 'lockstep attach --resync all (or name the replicas), or resync: "auto"',
              event: 'all-stale',
            },
            'every replica is stale: standing by',
          );
        staleAnnounced = true;
        await this.idle(2_000);
        continue;
      }
      const acquired = await attemptCoordinatorLock(parts.lock, parts.log);
      if (acquired === null) {
        await this.idle(1_000);
        continue;
      }
      if (acquired && parts.lock.epoch !== null) return true;
      if (acquired) {
        // Without an epoch nothing could be decided: wait for attach instead of flapping.
        await parts.lock.release();
        parts.log.error(
          { stream: parts.stream, fix: 'run lockstep attach' },
          'the stream is not attached',
        );
        await this.idle(5_000);
        continue;
      }
      if (!announced) {
        parts.log.info(
          { stream: parts.stream, event: 'standby' },
          'standing by: another sidecar is active',
        );
        announced = true;
      }
      await this.idle(1_000);
    }
  }

  /** Waits `ms` while standing by, or less should the process stop (checked first: a stop's wake is not kept). */
  private async idle(ms: number): Promise<void> {
    if (this.state.closing) return;
    await this.state.closed.wait(ms);
  }

  /** Reads what the new activation starts from, then starts its agents and loops. */
  private async activate(): Promise<void> {
    const { parts, state } = this;
    state.lockLost = false;
    state.allStale = false;
    state.stopping = false;
    state.coordinator = this.hooks.newCoordinator();
    state.active = true;
    state.statusDirty = true;
    const owner = `${hostname()}:${process.pid}`;
    await parts.status.markActive(owner);
    parts.log.info(
      { owner, epoch: parts.lock.epoch, event: 'sidecar-active' },
      'this sidecar is active',
    );
    await state.coordinator.start();
    await this.forgetUnconfigured();
    state.lastPositions = await parts.status.lastPositions();
    // Stale marks are durable: a replica marked stale before a restart stays out of the resume point.
    for (const replica of await parts.status.staleReplicas())
      if (state.agents.some((a) => a.name === replica)) state.stale.add(replica);
    await this.pause.follow();
    this.pause.listen();
    // stop() may have run while this activation read its state: start nothing then.
    if (state.stopping || state.closing) return;
    for (const agent of state.agents) {
      agent.forget();
      if (!state.stale.has(agent.name)) state.tasks.push(agent.run());
    }
    state.agentsRunning = true;
    for (const name of state.stale) this.hooks.startResync(name);
    state.tasks.push(...this.hooks.loops());
  }

  /** Rows of replicas removed while no sidecar ran: their marks mean nothing any more. */
  private async forgetUnconfigured(): Promise<void> {
    const { parts, state } = this;
    const forgotten = await parts.status.forgetUnconfigured(state.agents.map((a) => a.name));
    // No sidecar could finish their prepared rounds: out of the stream, rolling back is safe there.
    if (forgotten.length > 0)
      parts.log.warn(
        {
          replicas: forgotten,
          event: 'replicas-forgotten',
          fix: "on each, SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'lockstep\\_%' and ROLLBACK PREPARED each (safe while it stays out of the stream, or comes back through its own position or a resync), or put it back in the configuration and run lockstep recover",
        },
        'removed replicas not checked for prepared gids',
      );
  }

  /**
   * Checks the coordinator lock every few seconds (and at once when its
   * session ends or a decision is refused). A sidecar that lost it stops every
   * loop — open batches roll back, a decided round is finished, an undecided
   * one is left to the new holder — and stands by again.
   */
  private async watchLock(): Promise<void> {
    const { parts, state } = this;
    while (!state.closing) {
      await state.lockCheck.wait(LOCK_CHECK_MS);
      if (state.closing) return;
      if (!state.lockLost && !state.slotLost && !state.allStale && (await parts.lock.verify()))
        continue;
      if (state.closing) return;
      this.logStandingBy();
      await this.deactivate();
      await parts.lock.release();
      // A standby that has been waiting gets the first chance to take over.
      await this.idle(LOCK_CHECK_MS);
      while (!(await this.reactivate())) if (state.closing) return;
    }
  }

  /** Says why this activation ends. */
  private logStandingBy(): void {
    const { parts, state } = this;
    const loss = state.slotLost && state.observed.slot ? slotLoss(state.observed.slot) : null;
    if (loss)
      parts.log.error(
        { slot: state.observed.slot?.name, reason: loss.reason, fix: loss.fix, event: 'slot-lost' },
        'slot lost: standing by',
      );
    else if (state.allStale)
      parts.log.error(
        {
          fix: 'lockstep attach --resync all (or name the replicas), or resync: "auto"',
          event: 'all-stale',
        },
        'every replica is stale: standing by',
      );
    else
      parts.log.error(
        { epoch: parts.lock.epoch, event: 'lock-lost' },
        'lost the coordinator lock: standing by',
      );
  }

  /** With `resync: manual`, whether every replica is durably stale (false when that cannot be read). */
  private async everyReplicaStale(): Promise<boolean> {
    if (this.parts.resync) return false;
    const stale = await this.parts.status.staleReplicas().catch(() => null);
    return stale !== null && this.state.agents.every((a) => stale.has(a.name));
  }

  /** Reads the slot; why it can no longer stream, or null (also when it cannot be read now). */
  private async slotLossNow(): Promise<{ reason: string; fix: string } | null> {
    const { state } = this;
    const slot = await this.parts.status.slotHealth().catch(() => undefined);
    // Unread is not healthy: a slot known lost stays lost until it is read again.
    if (slot !== undefined) {
      state.observed = { ...state.observed, slot };
      state.statusDirty = true;
      state.slotLost = slot !== null && slotLoss(slot) !== null;
    }
    const known = state.observed.slot;
    return state.slotLost && known ? slotLoss(known) : null;
  }

  /** Stands by until the lock is free again, then becomes active; false when that failed half-way. */
  private async reactivate(): Promise<boolean> {
    if (!(await this.standBy())) return false;
    try {
      await this.activate();
      return true;
    } catch (error) {
      // E.g. the primary went down again while this activation read its state.
      this.parts.log.warn({ err: (error as Error).message }, 'cannot become active: standing by');
      await this.deactivate();
      await this.parts.lock.release();
      await this.idle(1_000);
      return false;
    }
  }

  /** Stops every loop of this activation; connections to the nodes stay open for the next one. */
  async deactivate(): Promise<void> {
    const { state } = this;
    state.stopping = true;
    // Backoff waits end now, not after the round in flight is finished.
    state.ended.notify();
    state.agentsRunning = false;
    state.active = false;
    state.statusDirty = true;
    // A round being decided or committed is finished first (bounded); one still voting is aborted.
    await state.coordinator.stop();
    for (const agent of state.agents) agent.stop();
    state.interrupt.notify();
    state.resumed.notify();
    state.replicaChanged.notify();
    await state.stream?.stop();
    state.window.reset();
    await Promise.allSettled(state.tasks);
    state.tasks = [];
    state.stale.clear();
    state.resyncing.clear();
    state.confirmed = null;
    state.joinHolds = null;
    state.rewindTo = null;
    // The next activation's stream may be a new one (attach --resync all starts again at 0).
    state.head = { version: 0, lsn: null, commitTime: null };
  }

  /** Reads whether the stream is paused and follows it: a pause ends the stream, a resume starts it again. */
  followPause(): Promise<void> {
    return this.pause.follow();
  }
}
