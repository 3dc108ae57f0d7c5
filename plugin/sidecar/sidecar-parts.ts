import type { Logger } from 'pino';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { DecisionStore, PhaseTwoNode } from '../coordinator/round-participant.js';
import type { CoordinatorOptions, TwoPhaseStatus } from '../coordinator/two-phase-coordinator.js';
import type { SlotHealth } from '../ports/slot-health.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import type { Lsn, ResumePoint } from '../protocol/index.js';
import type { ReplicaAgentOptions, ReplicaTarget } from '../replica/replica-agent.js';
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
  /** Round gids COMMIT PREPARED found rolled back outside lockstep here. */
  readonly commitsNotLanded: number;
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
  /** Null while unknown (the last listing failed, or not the coordinator): the gauges are then absent. */
  readonly inDoubt: { readonly count: number; readonly oldestSeconds: number } | null;
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
