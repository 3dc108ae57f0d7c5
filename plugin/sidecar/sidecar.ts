import type { PhaseTwoNode } from '../coordinator/round-participant.js';
import { TwoPhaseCoordinator } from '../coordinator/two-phase-coordinator.js';
import { logReplicaState } from '../replica/log-replica-state.js';
import { ReplicaAgent, type ReplicaTarget } from '../replica/replica-agent.js';
import { ActivationKeeper } from './activation-keeper.js';
import { runHousekeeping } from './housekeeping.js';
import { PacketWindow } from './packet-window.js';
import { ReplicaSet } from './replica-set.js';
import type { SidecarParts, SidecarSnapshot } from './sidecar-parts.js';
import { SidecarState } from './sidecar-state.js';
import { SlotKeeper } from './slot-keeper.js';
import { StaleResync } from './stale-resync.js';
import { StatusReporter } from './status-reporter.js';
import { StreamPump } from './stream-pump.js';

export type {
  PauseSignal,
  ReplicaSnapshot,
  SidecarLock,
  SidecarParts,
  SidecarSnapshot,
  SidecarStatusStore,
  SidecarTwoPhase,
} from './sidecar-parts.js';

/**
 * `lockstep run`: streams the primary once and applies to every replica
 * concurrently through one shared window. The slot is confirmed only up to the
 * lowest position every non-stale replica has durably applied, so a restart
 * (or a replica coming back) always finds the WAL it needs.
 *
 * This class wires the parts together: the stream pump, the slot keeper, the
 * status reporter and the activation keeper share one {@link SidecarState}.
 */
export class Sidecar {
  private readonly state: SidecarState;
  /** Phase two and recovery per node: the primary and every replica (replicas come and go). */
  private readonly nodes: Map<string, PhaseTwoNode>;
  /** Adds and removes replicas while running. */
  private readonly replicaSet: ReplicaSet;
  private readonly pump: StreamPump;
  private readonly reporter: StatusReporter;
  private readonly activation: ActivationKeeper;

  constructor(private readonly parts: SidecarParts) {
    // The stream runs at most two batches ahead of the most advanced replica: one being applied, one gathering.
    const state = new SidecarState(
      new PacketWindow(parts.windowChanges, parts.agent.batchRows, 2 * parts.agent.batchRows),
    );
    this.state = state;
    this.nodes = new Map(parts.twoPhase.nodes);
    for (const target of parts.targets) state.agents.push(this.newAgent(target));
    this.replicaSet = new ReplicaSet({
      agents: state.agents,
      nodes: this.nodes,
      log: parts.log,
      stream: parts.stream,
      newAgent: (target) => this.newAgent(target),
      startAgent: (agent) => this.startAddedAgent(agent),
      dropReplica: (name) => this.dropReplica(name),
      active: () => state.active && !state.stopping,
      leaveRound: (name) => state.coordinator.leave(name),
      recover: (node) => state.coordinator.recoverNode(node),
      forgetStatus: (name) => parts.status.forgetReplica(name),
    });
    const resync = new StaleResync(parts, state);
    const slots = new SlotKeeper(parts, state, resync, () => this.replicaSet.holding);
    this.pump = new StreamPump(parts, state, slots);
    this.reporter = new StatusReporter(parts, state);
    const housekeeping = { slots, reporter: this.reporter, pump: this.pump };
    this.activation = new ActivationKeeper(parts, state, {
      newCoordinator: () => this.newCoordinator(),
      startResync: (name) => resync.start(name),
      loops: () => [
        this.pump.run(),
        runHousekeeping(parts, state, {
          ...housekeeping,
          followPause: () => this.activation.followPause(),
        }),
      ],
    });
    state.coordinator = this.newCoordinator();
    parts.lock.onLost(() => {
      state.lockLost = true;
      state.lockCheck.notify();
    });
  }

  /** The packets read from the primary that some replica has yet to apply. */
  get window(): PacketWindow {
    return this.state.window;
  }

  /** One agent per replica. */
  get agents(): ReplicaAgent[] {
    return this.state.agents;
  }

  /** Replicas marked stale: no longer holding WAL; they need a resync. */
  get stale(): ReadonlySet<string> {
    return this.state.stale;
  }

  /** The primary stream is connected and reading. */
  get streaming(): boolean {
    return this.state.streaming;
  }

  /** Since when the stream is paused (`lockstep pause`); null while it runs. */
  get pausedSince(): Date | null {
    return this.state.pausedSince;
  }

  /** Runs two-phase rounds across the replicas (a new one per activation). */
  get coordinator(): TwoPhaseCoordinator {
    return this.state.coordinator;
  }

  /** This process holds the coordinator lock (it is the active sidecar). */
  get active(): boolean {
    return this.state.active;
  }

  /** An agent for one replica, wired to the shared window and to the sidecar's bookkeeping. */
  private newAgent(target: ReplicaTarget): ReplicaAgent {
    const { parts, state } = this;
    return new ReplicaAgent(target.node, target, state.window, parts.agent, {
      applied: (agent, position) => {
        state.lastPositions.set(agent.name, position);
        state.statusDirty = true;
      },
      stateChanged: (agent) => {
        state.statusDirty = true;
        state.replicaChanged.notify();
        logReplicaState(parts.log, agent);
      },
      needsRewind: (agent, position) => this.pump.requestRewind(agent.name, position),
      roundCommitted: (version) => state.coordinator.committedThrough >= version,
      timed: (agent, seconds, commitTime) =>
        parts.observer?.batchApplied(agent.name, seconds, commitTime),
      note: (agent, message, fields) => parts.log.info({ replica: agent.name, ...fields }, message),
    });
  }

  private newCoordinator(): TwoPhaseCoordinator {
    const { parts, state } = this;
    return new TwoPhaseCoordinator({
      stream: parts.stream,
      // A replica not placed in the stream yet (attach has not run) meets the rounds' packets later.
      participants: () =>
        state.agents
          .filter(
            (a) =>
              a.attached &&
              // Placed: reached with a position, or one recorded for it (an unplaced replica that
              // cannot be reached must not hold every round).
              (a.position !== null || state.lastPositions.has(a.name)) &&
              !state.stale.has(a.name) &&
              !state.resyncing.has(a.name),
          )
          .map((a) => a.participant),
      nodes: this.nodes,
      decisions: parts.twoPhase.decisions,
      log: parts.log,
      options: parts.twoPhase.options,
      fault: parts.twoPhase.fault,
      migrateLock: parts.twoPhase.migrateLock,
      epoch: () => (parts.lock.held ? parts.lock.epoch : null),
      // Replicas waiting at a gate for a round they are not part of (resyncing) may move on.
      onCommitted: () => {
        for (const agent of state.agents) agent.participant.nudge();
      },
      onRoundFinished: (outcome, seconds) => parts.observer?.roundFinished(outcome, seconds),
      onDeposed: () => {
        state.lockLost = true;
        state.lockCheck.notify();
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
    this.state.statusDirty = true;
    if (this.state.agentsRunning) this.state.tasks.push(agent.run());
  }

  /** Forgets what was kept about a replica (added anew, or removed). */
  private dropReplica(name: string): void {
    const { state } = this;
    if (state.rewindBy === name) state.rewindTo = null;
    state.stale.delete(name);
    state.resyncing.delete(name);
    state.lastPositions.delete(name);
    state.window.setCursor(name, null);
    state.statusDirty = true;
    state.replicaChanged.notify();
  }

  /**
   * Becomes the active sidecar (waiting as a standby while another holds the
   * coordinator lock), recovers what a crash left prepared, then starts every
   * loop. Resolves once it runs (the stream may still be connecting); false
   * when stopped while waiting. Should the lock be lost later, every loop
   * stops within seconds and the sidecar stands by again.
   */
  start(): Promise<boolean> {
    return this.activation.start();
  }

  /** Stops cleanly: open batches are rolled back (nothing half-applied), connections closed. */
  async stop(): Promise<void> {
    const { parts, state } = this;
    if (state.closing) return;
    state.closing = true;
    state.lockCheck.notify();
    state.closed.notify();
    const wasActive = state.active;
    await this.activation.deactivate();
    await this.activation.watched();
    await parts.pauses.close();
    if (wasActive) await this.reporter.writeStatus().catch(() => undefined);
    await parts.status.close();
    await parts.twoPhase.decisions.close();
    await this.replicaSet.settled();
    for (const node of this.nodes.values()) await node.close();
    await parts.twoPhase.migrateLock?.release();
    await parts.lock.release();
  }

  /** The sidecar now: per replica state, versions, lag and counts; two-phase rounds. */
  snapshot(): SidecarSnapshot {
    return this.reporter.snapshot();
  }

  /** Current state of each replica as reported to status. */
  replicaState(agent: ReplicaAgent): string {
    return this.reporter.replicaState(agent);
  }
}
