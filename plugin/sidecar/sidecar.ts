import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { DecisionStore, PhaseTwoNode } from '../coordinator/round-participant.js';
import {
  type CoordinatorOptions,
  TwoPhaseCoordinator,
  type TwoPhaseStatus,
} from '../coordinator/two-phase-coordinator.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { type SlotHealth, slotLoss } from '../ports/slot-health.js';
import { PacketWindow } from '../primary/packet-window.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import {
  compareLsn,
  type Lsn,
  lsnDistance,
  lsnToBigInt,
  type PacketPart,
  type ResumePoint,
  ZERO_LSN,
} from '../protocol/index.js';
import {
  ReplicaAgent,
  type ReplicaAgentOptions,
  type ReplicaPosition,
  type ReplicaTarget,
} from '../replica/replica-agent.js';
import { ReplicaSet } from './replica-set.js';
import type { SidecarObserver } from './sidecar-histograms.js';

/** The sidecar's view of the primary's bookkeeping (the status store adapter). */
export interface SidecarStatusStore {
  lastPositions(): Promise<Map<string, { version: number; lsn: Lsn }>>;
  write(
    replicas: ReadonlyArray<{
      replica: string;
      state: string;
      version: number | null;
      lsn: Lsn | null;
      error: string | null;
      /** The database its agent is connected to (database-identity.ts); null until it connected. */
      databaseId: string | null;
    }>,
    stream: {
      version: number;
      lsn: Lsn | null;
      commitTime: string | null;
      twoPhase?: TwoPhaseStatus;
    },
  ): Promise<void>;
  currentWalLsn(): Promise<Lsn>;
  /** The slot's confirmed_flush_lsn: WAL before it is gone. */
  slotConfirmedLsn(): Promise<Lsn | null>;
  /** The stream's slot (null when the stream is not attached). */
  slotHealth(): Promise<SlotHealth | null>;
  /** Records which sidecar (host:pid) is active. */
  markActive(owner: string): Promise<void>;
  /** Replicas marked stale and not resynced since (the mark is durable). */
  staleReplicas(): Promise<Set<string>>;
  /** Marks a replica stale durably, before it stops holding WAL. */
  markStale(replica: string): Promise<void>;
  /** Deletes a removed replica's row (state, last position, stale mark). */
  forgetReplica(replica: string): Promise<void>;
  /** Deletes the rows of replicas not configured (removed while no sidecar ran); returns their names. */
  forgetUnconfigured(configured: readonly string[]): Promise<string[]>;
  /** Since when the stream is paused (`lockstep pause`), or null while it runs. */
  pausedSince(): Promise<Date | null>;
  /** Where attach holds the slot for replicas it is copying to join (lockstep.join_holds). */
  joinHolds(): Promise<Lsn[]>;
  close(): Promise<void>;
}

/** One replica as the sidecar sees it now (metrics, readiness). */
export interface ReplicaSnapshot {
  readonly name: string;
  readonly state: string;
  readonly version: number | null;
  readonly lagVersions: number | null;
  readonly lagBytes: number | null;
  /** Age of the oldest packet it has not applied yet (0 when caught up). */
  readonly lagSeconds: number | null;
  readonly packetsApplied: number;
  readonly rowsApplied: number;
  readonly applyErrors: number;
  readonly error: string | null;
}

/** The sidecar now, for `/metrics` and `/readyz`. */
export interface SidecarSnapshot {
  /** Holds the coordinator lock (a standby does not). */
  readonly active: boolean;
  readonly streaming: boolean;
  /** Replication is paused (`lockstep pause`). */
  readonly paused: boolean;
  readonly headVersion: number;
  readonly slotRetainedBytes: number | null;
  /** The slot as last read (null before the first read, or not attached). */
  readonly slot: SlotHealth | null;
  /** Why the slot can no longer stream, with the fix; null while it can. */
  readonly slotLost: { readonly reason: string; readonly fix: string } | null;
  readonly replicas: readonly ReplicaSnapshot[];
  readonly twoPhase: TwoPhaseStatus;
  /** lockstep gids prepared on any node outside the round in flight, and the oldest's age. */
  readonly inDoubt: { readonly count: number; readonly oldestSeconds: number };
}

/** The coordinator's lock on the primary: one active sidecar per stream. */
export interface SidecarLock {
  tryAcquire(): Promise<boolean>;
  readonly held: boolean;
  /** The activation epoch raised when the lock was taken (part of every gid); null when not held. */
  readonly epoch: number | null;
  /** Whether the lock is still held under this epoch; false (and lost) when that cannot be told. */
  verify(): Promise<boolean>;
  /** Called once the lock is lost while held. */
  onLost(listener: () => void): void;
  release(): Promise<void>;
}

/** What two-phase rounds need. */
export interface SidecarTwoPhase {
  /** Phase two and recovery per node: every replica, and the primary. */
  readonly nodes: ReadonlyMap<string, PhaseTwoNode>;
  readonly decisions: DecisionStore;
  readonly options: CoordinatorOptions;
  readonly fault?: FaultHook;
  /** The migrate lock (see the coordinator). */
  readonly migrateLock?: { tryAcquire(): Promise<boolean>; release(): Promise<void> };
}

/** How often the active sidecar checks that it still holds the coordinator lock (ms). */
const LOCK_CHECK_MS = 2_000;

/** Everything the sidecar is built from. */
export interface SidecarParts {
  /**
   * Opens the primary stream from a resume point (a fresh connection each
   * time); keepalives are answered with `durable`, the lowest position every
   * non-stale replica holds, never with the resume point itself.
   */
  openStream(resume: ResumePoint, durable: Lsn): Promise<PrimaryStream>;
  readonly targets: readonly ReplicaTarget[];
  readonly status: SidecarStatusStore;
  readonly log: Logger;
  readonly agent: ReplicaAgentOptions;
  /** Most row changes held for deltas. */
  readonly windowChanges: number;
  /** A halted replica further behind than this is marked stale and stops holding WAL. */
  readonly maxLagBytes: number;
  /** With `resync: "auto"`: copies a stale replica anew (attach's resync); omitted for `manual`. */
  readonly resync?: (replica: string, stale: ReadonlySet<string>) => Promise<void>;
  /** Copies sequence values of replicated tables forward on every replica; every `sequenceSyncMs` (0: never). */
  readonly syncSequences?: () => Promise<void>;
  readonly sequenceSyncMs: number;
  /** The stream's name. */
  readonly stream: string;
  readonly lock: SidecarLock;
  readonly twoPhase: SidecarTwoPhase;
  /** Calls back at once when the stream is paused or resumed (the flag is then read from {@link SidecarStatusStore.pausedSince}). */
  readonly pauses: PauseSignal;
  /** Told how long batches and rounds take (the metrics' histograms). */
  readonly observer?: SidecarObserver;
}

/** Word that the stream was paused or resumed. */
export interface PauseSignal {
  listen(changed: () => void): Promise<void>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `lockstep run`: streams the primary once and applies to every replica
 * concurrently through one shared window. The slot is confirmed only up to the
 * lowest position every non-stale replica has durably applied, so a restart
 * (or a replica coming back) always finds the WAL it needs.
 */
export class Sidecar {
  readonly window: PacketWindow;
  readonly agents: ReplicaAgent[];
  private stream: PrimaryStream | null = null;
  private stopping = false;
  private rewindTo: ReplicaPosition | null = null;
  /** The replica that asked for {@link rewindTo}: its request ends if it turns stale or leaves. */
  private rewindBy: string | null = null;
  private wakeRewind: (() => void) | null = null;
  /** Wakes {@link resumePoint} when a replica's state changes (it waits for every replica to be reached or given up). */
  private wakeResume: (() => void) | null = null;
  private lastPositions = new Map<string, { version: number; lsn: Lsn }>();
  private confirmed: Lsn | null = null;
  /** Where attach holds the slot (joining replicas being copied), as last read; null: unread. */
  private joinHolds: Lsn[] | null = null;
  /** The slot was found lost while active: the activation ends and stands by. */
  private slotLost = false;
  /** Every replica became stale (resync: manual): the activation ends and stands by. */
  private allStale = false;
  /** When an idle point was last handed to the agents. */
  private idleNoted = 0;
  private head: { version: number; lsn: Lsn | null; commitTime: string | null } = {
    version: 0,
    lsn: null,
    commitTime: null,
  };
  private tasks: Promise<unknown>[] = [];
  private statusDirty = true;
  /** stop() was called: nothing starts again. */
  private closing = false;
  /** The lock was lost (its session ended, or a decision write was refused). */
  private lockLost = false;
  private wakeLockCheck: (() => void) | null = null;
  private lockWatch: Promise<void> = Promise.resolve();
  /** The pause listener runs across activations. */
  private listening = false;
  /** How often the slot's position was read for a resume point (the `slot-read` fault point). */
  private slotReads = 0;
  /** This activation has started its agents: one added now is started at once. */
  private agentsRunning = false;
  /** Replicas marked stale: no longer holding WAL; they need a resync. */
  readonly stale = new Set<string>();
  /** Replicas being resynced, and the position the slot must keep until they are back. */
  private readonly resyncing = new Map<string, Lsn>();
  /** The primary stream is connected and reading. */
  streaming = false;
  /** Since when the stream is paused (`lockstep pause`): no stream, replicas stay connected; null while it runs. */
  pausedSince: Date | null = null;
  /** Wakes the pump when the stream is resumed (or the sidecar stops). */
  private wakeUnpause: (() => void) | null = null;
  /** Runs two-phase rounds across the replicas (a new one per activation). */
  coordinator: TwoPhaseCoordinator;
  /** This process holds the coordinator lock (it is the active sidecar). */
  active = false;
  /** Phase two and recovery per node: the primary and every replica (replicas come and go). */
  private readonly nodes: Map<string, PhaseTwoNode>;
  /** Adds and removes replicas while running. */
  private readonly replicaSet: ReplicaSet;
  /** Figures read from the nodes every few seconds, for metrics. */
  private observed: {
    walLsn: Lsn | null;
    slot: SlotHealth | null;
    inDoubt: { count: number; oldestSeconds: number };
  } = { walLsn: null, slot: null, inDoubt: { count: 0, oldestSeconds: 0 } };

  constructor(private readonly parts: SidecarParts) {
    // The stream runs at most two batches ahead of the most advanced replica: one being applied, one gathering.
    this.window = new PacketWindow(
      parts.windowChanges,
      parts.agent.batchRows,
      2 * parts.agent.batchRows,
    );
    this.nodes = new Map(parts.twoPhase.nodes);
    this.agents = parts.targets.map((target) => this.newAgent(target));
    this.replicaSet = new ReplicaSet({
      agents: this.agents,
      nodes: this.nodes,
      log: parts.log,
      stream: parts.stream,
      newAgent: (target) => this.newAgent(target),
      startAgent: (agent) => this.startAddedAgent(agent),
      dropReplica: (name) => this.dropReplica(name),
      active: () => this.active && !this.stopping,
      leaveRound: (name) => this.coordinator.leave(name),
      recover: (node) => this.coordinator.recoverNode(node),
      forgetStatus: (name) => parts.status.forgetReplica(name),
    });
    this.coordinator = this.newCoordinator();
    parts.lock.onLost(() => {
      this.lockLost = true;
      this.wakeLockCheck?.();
    });
  }

  /** An agent for one replica, wired to the shared window and to the sidecar's bookkeeping. */
  private newAgent(target: ReplicaTarget): ReplicaAgent {
    const { parts } = this;
    return new ReplicaAgent(target.node, target, this.window, parts.agent, {
      applied: (agent, position) => {
        this.lastPositions.set(agent.name, position);
        this.statusDirty = true;
      },
      stateChanged: (agent) => {
        this.statusDirty = true;
        this.wakeResume?.();
        const error = agent.lastError;
        if ((agent.state === 'halted' || agent.state === 'unresponsive') && error) {
          parts.log.warn(
            {
              replica: agent.name,
              state: agent.state,
              table: error.table,
              version: error.version,
              kind: error.kind,
              fix: error.fix,
            },
            error.message,
          );
        } else {
          parts.log.info(
            { replica: agent.name, state: agent.state, version: agent.position?.version },
            'replica state changed',
          );
        }
      },
      needsRewind: (agent, position) => this.requestRewind(agent.name, position),
      roundCommitted: (version) => this.coordinator.committedThrough >= version,
      timed: (agent, seconds, commitTime) =>
        parts.observer?.batchApplied(agent.name, seconds, commitTime),
      note: (agent, message, fields) => parts.log.info({ replica: agent.name, ...fields }, message),
    });
  }

  private newCoordinator(): TwoPhaseCoordinator {
    return new TwoPhaseCoordinator({
      stream: this.parts.stream,
      // A replica not placed in the stream yet (attach has not run) meets the rounds' packets later.
      participants: () =>
        this.agents
          .filter(
            (a) =>
              a.attached &&
              // Placed: reached with a position, or one recorded for it (an unplaced replica that
              // cannot be reached must not hold every round).
              (a.position !== null || this.lastPositions.has(a.name)) &&
              !this.stale.has(a.name) &&
              !this.resyncing.has(a.name),
          )
          .map((a) => a.participant),
      nodes: this.nodes,
      decisions: this.parts.twoPhase.decisions,
      log: this.parts.log,
      options: this.parts.twoPhase.options,
      fault: this.parts.twoPhase.fault,
      migrateLock: this.parts.twoPhase.migrateLock,
      epoch: () => (this.parts.lock.held ? this.parts.lock.epoch : null),
      // Replicas waiting at a gate for a round they are not part of (resyncing) may move on.
      onCommitted: () => {
        for (const agent of this.agents) agent.participant.nudge();
      },
      onRoundFinished: (outcome, seconds) => this.parts.observer?.roundFinished(outcome, seconds),
      onDeposed: () => {
        this.lockLost = true;
        this.wakeLockCheck?.();
      },
    });
  }

  /** Adds a replica while running (a reloaded configuration); it holds the slot until attach places it. */
  addReplica(target: ReplicaTarget, node: PhaseTwoNode): Promise<void> {
    return this.replicaSet.add(target, node);
  }

  /** Replaces a replica whose URL changed (it may be another database now): removed, then added. */
  replaceReplica(target: ReplicaTarget, node: PhaseTwoNode): Promise<void> {
    return this.replicaSet.replace(target, node);
  }

  /** Removes a replica while running: it stops at once, its prepared gids are finished, its row goes. */
  removeReplica(name: string): Promise<void> {
    return this.replicaSet.remove(name);
  }

  /** Runs an agent added while this activation runs (the next activation starts it otherwise). */
  private startAddedAgent(agent: ReplicaAgent): void {
    this.statusDirty = true;
    if (this.agentsRunning) this.tasks.push(agent.run());
  }

  /** Forgets what was kept about a replica (added anew, or removed). */
  private dropReplica(name: string): void {
    if (this.rewindBy === name) this.rewindTo = null;
    this.stale.delete(name);
    this.resyncing.delete(name);
    this.lastPositions.delete(name);
    this.window.setCursor(name, null);
    this.statusDirty = true;
    this.wakeResume?.();
  }

  /**
   * Becomes the active sidecar (waiting as a standby while another holds the
   * coordinator lock), recovers what a crash left prepared, then starts every
   * loop. Resolves once it runs (the stream may still be connecting); false
   * when stopped while waiting. Should the lock be lost later, every loop
   * stops within seconds and the sidecar stands by again.
   */
  async start(): Promise<boolean> {
    // An activation that fails half-way (the primary restarting meanwhile) stands by and
    // tries again, as after a lost lock: it never ends the process.
    while (!(await this.reactivate())) if (this.closing) return false;
    this.lockWatch = this.watchLock();
    return true;
  }

  /** Waits until this process holds the coordinator lock; false when stopped meanwhile. */
  private async standBy(): Promise<boolean> {
    let announced = false;
    let lossAnnounced = false;
    let staleAnnounced = false;
    for (;;) {
      if (this.closing) return false;
      // A lost slot cannot stream: the lock is left free for lockstep attach --resync all.
      const loss = await this.slotLossNow();
      if (loss) {
        if (!lossAnnounced)
          this.parts.log.error({ slot: this.observed.slot?.name, fix: loss.fix }, loss.reason);
        lossAnnounced = true;
        await sleep(2_000);
        continue;
      }
      // Every replica stale and resync manual: nothing to run; the lock stays free for attach --resync.
      if (await this.everyReplicaStale()) {
        if (!staleAnnounced)
          this.parts.log.error(
            { fix: 'lockstep attach --resync all (or name the replicas), or resync: "auto"' },
            'every replica is stale: standing by until they are copied anew',
          );
        staleAnnounced = true;
        await sleep(2_000);
        continue;
      }
      const acquired = await this.parts.lock.tryAcquire().catch((error: Error) => {
        this.parts.log.warn({ err: error.message }, 'cannot take the coordinator lock');
        return false;
      });
      if (acquired && this.parts.lock.epoch !== null) return true;
      if (acquired) {
        // Without an epoch nothing could be decided: wait for attach instead of flapping.
        await this.parts.lock.release();
        this.parts.log.error(
          { stream: this.parts.stream, fix: 'run lockstep attach' },
          'the stream is not attached',
        );
        await sleep(5_000);
        continue;
      }
      if (!announced) {
        this.parts.log.info(
          'another lockstep sidecar is active for this stream: standing by until it stops',
        );
        announced = true;
      }
      await sleep(1_000);
    }
  }

  private async activate(): Promise<void> {
    this.lockLost = false;
    this.allStale = false;
    this.stopping = false;
    this.coordinator = this.newCoordinator();
    this.active = true;
    this.statusDirty = true;
    const owner = `${hostname()}:${process.pid}`;
    await this.parts.status.markActive(owner);
    this.parts.log.info(
      { owner, epoch: this.parts.lock.epoch },
      `this sidecar (${owner}) is active: it holds the coordinator lock`,
    );
    await this.coordinator.start();
    // Rows of replicas removed while no sidecar ran: their marks mean nothing any more.
    const forgotten = await this.parts.status.forgetUnconfigured(this.agents.map((a) => a.name));
    // No sidecar could finish their prepared rounds: out of the stream, rolling back is safe there.
    if (forgotten.length > 0)
      this.parts.log.warn(
        {
          replicas: forgotten,
          event: 'replicas-forgotten',
          fix: "on each, SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'lockstep\\_%' and ROLLBACK PREPARED each (safe while it stays out of the stream, or comes back through its own position or a resync), or put it back in the configuration and run lockstep recover",
        },
        'replicas removed while no sidecar was active: their lockstep prepared transactions, if any, were not checked',
      );
    this.lastPositions = await this.parts.status.lastPositions();
    // Stale marks are durable: a replica marked stale before a restart stays out of the resume point.
    for (const replica of await this.parts.status.staleReplicas())
      if (this.agents.some((a) => a.name === replica)) this.stale.add(replica);
    await this.followPause();
    if (!this.listening) {
      this.listening = true;
      // The listening connection opens meanwhile; once it listens the flag is read again, should it have changed in between.
      void this.parts.pauses.listen(() => void this.followPause()).then(() => this.followPause());
    }
    // stop() may have run while this activation read its state: start nothing then.
    if (this.stopping || this.closing) return;
    for (const agent of this.agents) {
      agent.forget();
      if (!this.stale.has(agent.name)) this.tasks.push(agent.run());
    }
    this.agentsRunning = true;
    for (const name of this.stale) this.startResync(name);
    this.tasks.push(this.pumpLoop(), this.housekeepingLoop());
  }

  /**
   * Checks the coordinator lock every few seconds (and at once when its
   * session ends or a decision is refused). A sidecar that lost it stops every
   * loop — open batches roll back, a decided round is finished, an undecided
   * one is left to the new holder — and stands by again.
   */
  private async watchLock(): Promise<void> {
    while (!this.closing) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, LOCK_CHECK_MS);
        this.wakeLockCheck = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeLockCheck = null;
      if (this.closing) return;
      if (!this.lockLost && !this.slotLost && !this.allStale && (await this.parts.lock.verify()))
        continue;
      if (this.closing) return;
      const loss = this.slotLost && this.observed.slot ? slotLoss(this.observed.slot) : null;
      if (loss)
        this.parts.log.error(
          { slot: this.observed.slot?.name, fix: loss.fix },
          `${loss.reason}: stopping every loop and standing by`,
        );
      else if (this.allStale)
        this.parts.log.error(
          { fix: 'lockstep attach --resync all (or name the replicas), or resync: "auto"' },
          'every replica is stale: stopping every loop and standing by',
        );
      else
        this.parts.log.error(
          { epoch: this.parts.lock.epoch },
          'lost the coordinator lock: stopping every loop and standing by',
        );
      await this.deactivate();
      await this.parts.lock.release();
      // A standby that has been waiting gets the first chance to take over.
      await sleep(LOCK_CHECK_MS);
      while (!(await this.reactivate())) if (this.closing) return;
    }
  }

  /** With `resync: manual`, whether every replica is durably stale (false when that cannot be read). */
  private async everyReplicaStale(): Promise<boolean> {
    if (this.parts.resync) return false;
    const stale = await this.parts.status.staleReplicas().catch(() => null);
    return stale !== null && this.agents.every((a) => stale.has(a.name));
  }

  /** Reads the slot; why it can no longer stream, or null (also when it cannot be read now). */
  private async slotLossNow(): Promise<{ reason: string; fix: string } | null> {
    const slot = await this.parts.status.slotHealth().catch(() => undefined);
    // Unread is not healthy: a slot known lost stays lost until it is read again.
    if (slot !== undefined) {
      this.observed = { ...this.observed, slot };
      this.statusDirty = true;
      this.slotLost = slot !== null && slotLoss(slot) !== null;
    }
    const known = this.observed.slot;
    return this.slotLost && known ? slotLoss(known) : null;
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
      await sleep(1_000);
      return false;
    }
  }

  /** Stops every loop of this activation; connections to the nodes stay open for the next one. */
  private async deactivate(): Promise<void> {
    this.stopping = true;
    this.agentsRunning = false;
    this.active = false;
    this.statusDirty = true;
    // A round being decided or committed is finished first (bounded); one still voting is aborted.
    await this.coordinator.stop();
    for (const agent of this.agents) agent.stop();
    this.wakeRewind?.();
    this.wakeUnpause?.();
    this.wakeResume?.();
    await this.stream?.stop();
    this.window.reset();
    await Promise.allSettled(this.tasks);
    this.tasks = [];
    this.stale.clear();
    this.resyncing.clear();
    this.confirmed = null;
    this.joinHolds = null;
    this.rewindTo = null;
    // The next activation's stream may be a new one (attach --resync all starts again at 0).
    this.head = { version: 0, lsn: null, commitTime: null };
  }

  /** Stops cleanly: open batches are rolled back (nothing half-applied), connections closed. */
  async stop(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wakeLockCheck?.();
    const wasActive = this.active;
    await this.deactivate();
    await this.lockWatch;
    await this.parts.pauses.close();
    if (wasActive) await this.writeStatus().catch(() => undefined);
    await this.parts.status.close();
    await this.parts.twoPhase.decisions.close();
    await this.replicaSet.settled();
    for (const node of this.nodes.values()) await node.close();
    await this.parts.twoPhase.migrateLock?.release();
    await this.parts.lock.release();
  }

  /** Reads whether the stream is paused and follows it: a pause ends the stream, a resume starts it again. */
  private async followPause(): Promise<void> {
    let since: Date | null;
    try {
      since = await this.parts.status.pausedSince();
    } catch (error) {
      this.parts.log.warn(
        { err: (error as Error).message },
        'cannot read whether the stream is paused',
      );
      return;
    }
    if ((since === null) === (this.pausedSince === null)) return;
    this.pausedSince = since;
    this.statusDirty = true;
    if (since) {
      this.parts.log.info(
        { since: since.toISOString() },
        'replication is paused (lockstep pause): the stream stops, replicas stay connected, the slot keeps WAL from the lowest replica position; lockstep resume continues',
      );
      this.wakeRewind?.();
    } else {
      this.parts.log.info('replication is resumed');
      this.wakeUnpause?.();
    }
  }

  private requestRewind(replica: string, position: ReplicaPosition): void {
    if (this.stale.has(replica)) return;
    if (this.rewindTo && this.rewindTo.version <= position.version) return;
    this.parts.log.info(
      { replica, version: position.version },
      `replica ${replica} needs packets no longer in memory: re-reading the slot from version ${position.version}`,
    );
    this.rewindTo = position;
    this.rewindBy = replica;
    this.wakeRewind?.();
  }

  /** Where the stream starts: the lowest position among the replicas that can take packets now. */
  private async resumePoint(): Promise<ResumePoint | null> {
    for (;;) {
      if (this.stopping) return null;
      // A stale replica's agent does not run: it is not waited for.
      const waiting = this.agents.filter((a) => a.state === 'starting' && !this.stale.has(a.name));
      let checked = waiting.length === 0;
      if (checked) {
        try {
          await this.markGone();
        } catch (error) {
          // Fail closed: no stream starts from a point not checked against the slot.
          checked = false;
          this.parts.log.warn(
            { err: (error as Error).message },
            'cannot check replica positions against the slot: waiting',
          );
        }
      }
      const known = this.agents.filter(
        (a) =>
          a.position &&
          a.state !== 'halted' &&
          a.state !== 'unresponsive' &&
          !this.stale.has(a.name),
      );
      if (known.length > 0 && checked) {
        let low = (known[0] as ReplicaAgent).position as ReplicaPosition;
        for (const a of known)
          if ((a.position as ReplicaPosition).version < low.version)
            low = a.position as ReplicaPosition;
        // A rewind asked by a replica found stale (or gone) since is void: its position may be
        // before the slot's, and a stream started there would number packets wrongly for all.
        const asker = this.agents.find((a) => a.name === this.rewindBy);
        if (!asker || this.stale.has(asker.name)) this.rewindTo = null;
        if (this.rewindTo && this.rewindTo.version < low.version) low = this.rewindTo;
        return low;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, checked || waiting.length > 0 ? 100 : 1_000);
        this.wakeResume = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeResume = null;
    }
  }

  private async pumpLoop(): Promise<void> {
    let delay = 500;
    while (!this.stopping) {
      while (this.pausedSince && !this.stopping)
        await new Promise<void>((resolve) => {
          this.wakeUnpause = resolve;
        });
      this.wakeUnpause = null;
      const resume = await this.resumePoint();
      if (!resume) return;
      this.rewindTo = null;
      let stream: PrimaryStream;
      try {
        stream = await this.parts.openStream(resume, this.confirmable() ?? ZERO_LSN);
      } catch (error) {
        this.streaming = false;
        this.statusDirty = true;
        const fix = error instanceof LockstepError ? error.fix : undefined;
        this.parts.log.error(
          { err: (error as Error).message, fix, event: 'stream-refused' },
          'cannot stream from the primary',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 30_000);
        continue;
      }
      delay = 500;
      this.stream = stream;
      this.window.reset();
      if (this.confirmed) stream.confirm(this.confirmed);
      this.streaming = true;
      this.statusDirty = true;
      this.parts.log.info(
        { version: resume.version, lsn: resume.lsn },
        `streaming from version ${resume.version}`,
      );
      try {
        let packetRows = 0;
        for (;;) {
          if (this.rewindTo || this.stopping || this.pausedSince) break;
          // Parts already assembled are taken without a promise each; only an empty queue is awaited.
          let part: PacketPart | null | undefined = stream.poll();
          if (part === undefined) {
            const rewind = new Promise<null>((resolve) => {
              this.wakeRewind = () => resolve(null);
            });
            part = await Promise.race([stream.next(), rewind]);
          }
          if (!part) break;
          if (!this.window.hasRoom()) {
            // A full window waits for the replicas; a rewind, pause or stop must not wait with it
            // (a replica that needs a rewind may be what the others wait for, at a two-phase gate).
            const interrupted = () => this.rewindTo || this.stopping || this.pausedSince;
            if (!interrupted()) {
              const rewind = new Promise<void>((resolve) => {
                this.wakeRewind = resolve;
              });
              await Promise.race([this.window.waitForRoom(), rewind]);
            }
            // The part is dropped: the restarted stream reads it again.
            if (interrupted()) break;
          }
          this.window.push(part);
          packetRows = (part.index === 0 ? 0 : packetRows) + part.changes.length;
          if (part.final?.phase === 'two') {
            this.coordinator.offer({
              version: part.header.version,
              lsn: part.header.lsn,
              rows: packetRows,
              whole: part.index === 0,
            });
          }
          // The header itself: its commit time is formatted only if status reads it.
          if (part.final) this.head = part.header;
        }
      } catch (error) {
        this.parts.log.error(
          { err: (error as Error).message },
          `the primary stream failed: ${(error as Error).message}`,
        );
        await sleep(delay);
      } finally {
        this.streaming = false;
        this.statusDirty = true;
        this.stream = null;
        await stream.stop();
      }
    }
  }

  /** Confirms the slot, marks stale replicas and records status, a few times a second. */
  private async housekeepingLoop(): Promise<void> {
    let lastWrite = 0;
    let lastStaleCheck = 0;
    let lastSequenceSync = Date.now();
    while (!this.stopping) {
      await sleep(200);
      await this.readJoinHolds();
      this.confirmSlot();
      this.noteIdle();
      const now = Date.now();
      try {
        if (now - lastStaleCheck > 5_000) {
          lastStaleCheck = now;
          // Should a notification have been missed.
          await this.followPause();
          await this.observe();
          // Also for replicas added while running: a position the slot no longer has is stale
          // (against the slot observe() just read).
          await this.markGoneAt(this.observed.slot?.confirmedLsn ?? null);
          await this.markStale();
          await this.followStaleMarks();
        }
        const every = this.parts.sequenceSyncMs;
        if (every > 0 && this.parts.syncSequences && now - lastSequenceSync >= every) {
          lastSequenceSync = now;
          await this.parts.syncSequences();
        }
        if (this.statusDirty || now - lastWrite > 5_000) {
          lastWrite = now;
          this.statusDirty = false;
          await this.writeStatus();
        }
      } catch (error) {
        this.parts.log.warn(
          { err: (error as Error).message },
          'cannot record status on the primary',
        );
      }
    }
  }

  /** The lowest durable position of the replicas that are not stale; null while one is unknown. */
  private confirmable(): Lsn | null {
    // A replica being replaced is out of the list for a moment: its position still counts.
    // Holds unread (or unreadable): a replica being copied may need any of the WAL.
    if (this.replicaSet.holding || this.joinHolds === null) return null;
    let low: Lsn | null = null;
    for (const hold of this.joinHolds) if (!low || compareLsn(hold, low) < 0) low = hold;
    for (const hold of this.resyncing.values()) if (!low || compareLsn(hold, low) < 0) low = hold;
    for (const agent of this.agents) {
      if (this.stale.has(agent.name)) continue;
      const position = this.positionOf(agent);
      if (!position) return null; // a replica we know nothing of yet: hold everything
      if (!low || compareLsn(position.lsn, low) < 0) low = position.lsn;
    }
    return low;
  }

  /**
   * Hands the stream's latest idle point to the agents, at most once a second
   * (each stores it: one small write per replica), so a quiet stream over a
   * busy primary releases the WAL of the tables it does not replicate.
   */
  private noteIdle(): void {
    const idle = this.stream?.idlePoint;
    if (!idle || Date.now() - this.idleNoted < 1_000) return;
    this.idleNoted = Date.now();
    this.window.markIdle(idle);
  }

  /** Reads attach's join holds; unreadable, none is known and nothing is confirmed (fail closed). */
  private async readJoinHolds(): Promise<void> {
    try {
      this.joinHolds = await this.parts.status.joinHolds();
    } catch (error) {
      if (this.joinHolds !== null)
        this.parts.log.warn(
          { err: (error as Error).message },
          'cannot read the join holds: the slot is not confirmed until they are read',
        );
      this.joinHolds = null;
    }
  }

  /** The slot may release WAL up to {@link confirmable}. */
  private confirmSlot(): void {
    const low = this.confirmable();
    if (!low || (this.confirmed && compareLsn(low, this.confirmed) <= 0)) return;
    this.confirmed = low;
    this.stream?.confirm(low);
  }

  /**
   * A replica whose position is before the slot's confirmed point cannot be
   * served any more (that WAL is gone, and re-reading would number packets
   * wrongly): it is stale and stops until it is resynced. Fails closed: when
   * the slot cannot be read, this throws and no stream starts.
   */
  private async markGone(): Promise<void> {
    this.parts.twoPhase.fault?.('slot-read', ++this.slotReads);
    await this.markGoneAt(await this.parts.status.slotConfirmedLsn());
  }

  /** {@link markGone} against a confirmed point already read (null: no slot, nothing to compare). */
  private async markGoneAt(confirmed: Lsn | null): Promise<void> {
    // No slot: START_REPLICATION fails and says why; nothing to compare with.
    if (!confirmed) return;
    for (const agent of this.agents) {
      if (!agent.position || this.stale.has(agent.name)) continue;
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
    await this.parts.status.markStale(agent.name);
    this.stale.add(agent.name);
    if (this.rewindBy === agent.name) this.rewindTo = null;
    agent.stop();
    this.statusDirty = true;
    this.parts.log.error(
      {
        replica: agent.name,
        event: 'replica-stale',
        ...fields,
        fix: this.parts.resync ? 'resyncing it now (resync: auto)' : fix,
      },
      `replica is stale (${why}): it no longer holds WAL and needs a resync`,
    );
    this.startResync(agent.name);
    if (!this.parts.resync && this.agents.every((a) => this.stale.has(a.name))) {
      // Nothing left to apply to: free the lock for lockstep attach --resync.
      this.allStale = true;
      this.wakeLockCheck?.();
    }
  }

  /** With `resync: "auto"`, copies a stale replica anew in the background. */
  private startResync(replica: string): void {
    const agent = this.agents.find((a) => a.name === replica);
    if (this.parts.resync && agent) this.tasks.push(this.resyncAgent(agent));
  }

  /** resync: auto — copies the replica anew while the slot is held, then lets it catch up. */
  private async resyncAgent(agent: ReplicaAgent): Promise<void> {
    let delay = 1_000;
    // Removed from the configuration: its resync ends, and with it the WAL held for it.
    while (!this.stopping && this.agents.includes(agent)) {
      // Hold the slot at the lowest healthy position: the resync restarts the replica from there.
      let hold: Lsn | null = null;
      for (const other of this.agents) {
        if (other === agent || this.stale.has(other.name) || !other.position) continue;
        if (!hold || compareLsn(other.position.lsn, hold) < 0) hold = other.position.lsn;
      }
      if (!hold) {
        await sleep(delay);
        continue;
      }
      this.resyncing.set(agent.name, hold);
      this.statusDirty = true;
      try {
        await agent.waitStopped();
        await (this.parts.resync as NonNullable<SidecarParts['resync']>)(agent.name, this.stale);
        // Deactivated meanwhile: the next activation starts the agent (its stale mark is gone).
        // Removed from the configuration meanwhile: nothing more to do for it.
        if (this.stopping || !this.agents.includes(agent)) return;
        this.stale.delete(agent.name);
        this.lastPositions.delete(agent.name);
        // Its copy is a new start: nothing it knew of rounds or positions holds any more.
        agent.forget();
        this.parts.log.info({ replica: agent.name }, 'replica resynced: catching up from its copy');
        this.tasks.push(agent.run());
        return;
      } catch (error) {
        if (!this.agents.includes(agent)) return;
        this.parts.log.error(
          { replica: agent.name, err: (error as Error).message },
          'resync failed: retrying',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      } finally {
        this.resyncing.delete(agent.name);
        this.statusDirty = true;
      }
    }
  }

  private async markStale(): Promise<void> {
    const halted = this.agents.filter(
      (a) => (a.state === 'halted' || a.state === 'unresponsive') && !this.stale.has(a.name),
    );
    if (halted.length === 0) return;
    // Just read by observe(); asked again only if that failed.
    const current = this.observed.walLsn ?? (await this.parts.status.currentWalLsn());
    for (const agent of halted) {
      const position = this.positionOf(agent);
      // No position (never placed by attach, or never reached): it holds the slot where it stands.
      const from = position?.lsn ?? this.confirmed ?? (await this.parts.status.slotConfirmedLsn());
      const behind = from ? lsnDistance(from, current) : 0;
      if (behind <= this.parts.maxLagBytes) continue;
      const fields = { lagBytes: behind, maxLagBytes: this.parts.maxLagBytes };
      if (position) await this.markStaleAgent(agent, 'further behind than maxLagBytes', fields);
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
  private async followStaleMarks(): Promise<void> {
    const unplaced = this.agents.filter(
      (a) => this.stale.has(a.name) && !this.resyncing.has(a.name) && !this.positionOf(a),
    );
    if (unplaced.length === 0) return;
    const marked = await this.parts.status.staleReplicas();
    for (const agent of unplaced) {
      if (marked.has(agent.name)) continue;
      await agent.waitStopped();
      if (this.stopping || !this.agents.includes(agent)) return;
      this.stale.delete(agent.name);
      agent.forget();
      this.tasks.push(agent.run());
      this.statusDirty = true;
      this.parts.log.info(
        { replica: agent.name, event: 'replica-unmarked' },
        `replica ${agent.name}: lockstep attach ended its stale mark; it holds the slot again until attach places it`,
      );
    }
  }

  /** Reads what metrics report from the nodes: WAL position, slot retention, in-doubt gids. */
  private async observe(): Promise<void> {
    // The slot first and on its own: a frozen replica (in-doubt listing) must not delay its loss.
    const slot = await this.parts.status.slotHealth().catch(() => this.observed.slot);
    const [walLsn, inDoubt] = await Promise.all([
      this.parts.status.currentWalLsn().catch(() => null),
      this.coordinator.inDoubt().catch(() => this.observed.inDoubt),
    ]);
    this.observed = { walLsn, slot, inDoubt };
    if (slot && slotLoss(slot) && !this.slotLost) {
      // Nothing can stream from this slot again: stand by (releasing the lock) until it is recreated.
      this.slotLost = true;
      this.wakeLockCheck?.();
    }
  }

  /** The sidecar now: per replica state, versions, lag and counts; two-phase rounds. */
  snapshot(): SidecarSnapshot {
    let headVersion = this.head.version;
    for (const a of this.agents) headVersion = Math.max(headVersion, a.position?.version ?? 0);
    const now = Date.now();
    return {
      // The lock's session ending (terminated, cut) ends activity at once, before the loops stop.
      active: this.active && this.parts.lock.held,
      streaming: this.streaming,
      paused: this.pausedSince !== null,
      headVersion,
      slotRetainedBytes: this.observed.slot?.retainedBytes ?? null,
      slot: this.observed.slot,
      slotLost: this.observed.slot ? slotLoss(this.observed.slot) : null,
      twoPhase: this.coordinator.status(),
      inDoubt: this.observed.inDoubt,
      replicas: this.agents.map((a) => {
        const position = this.positionOf(a);
        // Paused, nothing new is read: the head is old, so lag in versions is unknown (lagBytes still tells).
        const lagVersions =
          position && !this.pausedSince ? Math.max(0, headVersion - position.version) : null;
        let lagSeconds: number | null = lagVersions === 0 ? 0 : null;
        if (position && lagVersions) {
          const seq = this.window.locate(position.version);
          const next = seq === null ? undefined : this.window.at(seq);
          if (next) lagSeconds = Math.max(0, (now - Date.parse(next.header.commitTime)) / 1000);
        }
        const wal = this.observed.walLsn;
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
          error: a.lastError?.message ?? null,
        };
      }),
    };
  }

  /** A replica's durable position: what its agent read, else what was last recorded for it; null if neither. */
  private positionOf(agent: ReplicaAgent): ReplicaPosition | null {
    return agent.position ?? this.lastPositions.get(agent.name) ?? null;
  }

  /** Current state of each replica as reported to status. */
  replicaState(agent: ReplicaAgent): string {
    // Without its slot no replica can catch up: each needs a fresh copy, whatever it last did.
    if (this.observed.slot && slotLoss(this.observed.slot)) return 'stale';
    if (this.resyncing.has(agent.name)) return 'resyncing';
    if (this.stale.has(agent.name)) return 'stale';
    if (!agent.attached) return 'not-attached';
    const following = agent.state === 'streaming' || agent.state === 'catching-up';
    return following && this.pausedSince ? 'paused' : agent.state;
  }

  private async writeStatus(): Promise<void> {
    await this.parts.status.write(
      this.agents.map((a) => {
        const position = this.positionOf(a);
        return {
          replica: a.name,
          state: this.replicaState(a),
          version: position?.version ?? null,
          lsn: position?.lsn ?? null,
          error: a.lastError?.message ?? null,
          databaseId: a.databaseId,
        };
      }),
      { ...this.head, twoPhase: this.coordinator.status() },
    );
  }
}
