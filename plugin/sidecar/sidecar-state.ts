import type { TwoPhaseCoordinator } from '../coordinator/two-phase-coordinator.js';
import type { SlotHealth } from '../ports/slot-health.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import type { Lsn } from '../protocol/index.js';
import type { ReplicaAgent, ReplicaPosition } from '../replica/replica-agent.js';
import { Signal } from '../support/signal.js';
import type { PacketWindow } from './packet-window.js';

/** The stream's newest packet header, as status reports it. */
export interface StreamHead {
  version: number;
  lsn: Lsn | null;
  commitTime: string | null;
}

/** Figures read from the nodes every few seconds, for metrics. */
export interface Observed {
  walLsn: Lsn | null;
  slot: SlotHealth | null;
  /** Null while unknown: the last listing failed (a count kept from before would be stale). */
  inDoubt: { count: number; oldestSeconds: number } | null;
}

/**
 * What the parts of a sidecar (pump, slot keeper, status reporter,
 * activation keeper) share: one object, so that each part reads what the
 * others changed without a copy going stale.
 */
export class SidecarState {
  /** One agent per configured replica (changed in place when replicas come and go). */
  readonly agents: ReplicaAgent[] = [];
  /** Runs two-phase rounds across the replicas (a new one per activation). */
  coordinator!: TwoPhaseCoordinator;
  stream: PrimaryStream | null = null;
  /** This activation is stopping (or stopped): its loops end. */
  stopping = false;
  /** stop() was called: nothing starts again. */
  closing = false;
  /** This process holds the coordinator lock (it is the active sidecar). */
  active = false;
  /** The primary stream is connected and reading. */
  streaming = false;
  /** Since when the stream is paused (`lockstep pause`): no stream, replicas stay connected; null while it runs. */
  pausedSince: Date | null = null;
  rewindTo: ReplicaPosition | null = null;
  /** The replica that asked for {@link rewindTo}: its request ends if it turns stale or leaves. */
  rewindBy: string | null = null;
  lastPositions = new Map<string, { version: number; lsn: Lsn }>();
  confirmed: Lsn | null = null;
  /** Where attach holds the slot (joining replicas being copied), as last read; null: unread. */
  joinHolds: Lsn[] | null = null;
  /** The slot was found lost while active: the activation ends and stands by. */
  slotLost = false;
  /** Every replica became stale (resync: manual): the activation ends and stands by. */
  allStale = false;
  /** The lock was lost (its session ended, or a decision write was refused). */
  lockLost = false;
  head: StreamHead = { version: 0, lsn: null, commitTime: null };
  /** The loops and agents of this activation. */
  tasks: Promise<unknown>[] = [];
  statusDirty = true;
  /** This activation has started its agents: one added now is started at once. */
  agentsRunning = false;
  /** Replicas marked stale: no longer holding WAL; they need a resync. */
  readonly stale = new Set<string>();
  /** Replicas being resynced, and the position the slot must keep until they are back. */
  readonly resyncing = new Map<string, Lsn>();
  observed: Observed = { walLsn: null, slot: null, inDoubt: null };
  /** Wakes the pump out of a wait for the stream or for room: a rewind, a pause or a stop. */
  readonly interrupt = new Signal();
  /** Wakes the pump's wait for a resume point when a replica's state changes. */
  readonly replicaChanged = new Signal();
  /** Wakes the pump when the stream is resumed (or the sidecar stops). */
  readonly resumed = new Signal();
  /** Wakes the lock check at once: lock lost, slot lost, every replica stale, or stopping. */
  readonly lockCheck = new Signal();
  /** Wakes a standby's waits when the process stops (only then). */
  readonly closed = new Signal();
  /** Wakes this activation's backoff waits when it stops (lock lost, or the process stops). */
  readonly ended = new Signal();

  constructor(readonly window: PacketWindow) {}

  /**
   * Waits `ms` before a retry, or less should this activation stop meanwhile:
   * a stop never sleeps out a backoff (up to 30 s) before it can close.
   */
  backoff(ms: number): Promise<void> {
    // The flag is checked and the waiter registered in one synchronous step.
    return this.stopping ? Promise.resolve() : this.ended.wait(ms);
  }

  /** A replica's durable position: what its agent read, else what was last recorded for it; null if neither. */
  positionOf(agent: ReplicaAgent): ReplicaPosition | null {
    return agent.position ?? this.lastPositions.get(agent.name) ?? null;
  }
}
