import type { MigrationReading } from '../protocol/migration-summary.js';
import type { CatalogTable } from './catalog-table.js';
import type {
  PrimarySetup,
  ReplicaSetup,
  SequenceSyncResult,
  TableCopyJob,
  TableCopyOutcome,
} from './cluster-setup.js';
import type { JoinHoldSession, JoinHoldsStore } from './join-holds.js';
import type { ReplicaLockPort } from './packet-reader.js';
import type { PositionsStore } from './positions-store.js';
import type { ReplicaStatusStore } from './replica-status-store.js';
import type { CreatedSlot, ReplicationSlots, SlotCreation } from './replication-slots.js';
import type { ResyncGuardPort } from './resync-guard.js';
import type { StreamLockPort } from './stream-lock.js';
import type { StreamLockPurpose } from './stream-lock-holder.js';
import type { StreamsStore } from './streams-store.js';
import type { SyncedTablesStore } from './synced-tables-store.js';

/** A lockstep gid prepared on a node. */
export interface PreparedGidEntry {
  readonly gid: string;
  /** When it was prepared (ISO-8601). */
  readonly preparedAt: string;
  readonly ageSeconds: number;
}

/** One session on a node: what every node can be asked. Close it. */
export interface NodeSession {
  /** Every ordinary table of the node, lockstep's own schema aside. */
  readCatalog(): Promise<CatalogTable[]>;
  /** The server settings doctor looks at (absent ones are missing). */
  serverSettings(): Promise<Map<string, string>>;
  /** The role this session runs as. */
  currentRole(): Promise<string | undefined>;
  /** Every lockstep gid (any stream) prepared in this database, oldest first. */
  preparedGids(): Promise<PreparedGidEntry[]>;
  /**
   * The node's migration history (`lockstep.migrations`, none where it has no
   * such table) and, on a replica, when the stream's current copy began.
   */
  migrationReading(stream: string): Promise<MigrationReading>;
  close(): Promise<void>;
}

/** A session on the primary; every store on it runs on this one session. */
export interface PrimarySession extends NodeSession {
  readonly slots: ReplicationSlots;
  readonly setup: PrimarySetup;
  readonly streams: StreamsStore;
  readonly replicaStatus: ReplicaStatusStore;
  readonly joinHolds: JoinHoldsStore;
  /** Whether some session holds the stream's coordinator lock now. */
  streamLockHeld(stream: string): Promise<boolean>;
}

/** A session on a replica; every store on it runs on this one session. */
export interface ReplicaSession extends NodeSession {
  readonly setup: ReplicaSetup;
  readonly positions: PositionsStore;
  readonly syncedTables: SyncedTablesStore;
  /** Forgets the stream (position and copied tables), never waiting long on a lock. */
  forgetStream(stream: string): Promise<void>;
}

/** How a session is opened. */
export interface SessionOptions {
  /** The application name the server shows. */
  readonly applicationName?: string;
  /** A bounded query time (control work); its close never waits on a frozen host. */
  readonly bounded?: boolean;
  /** With `bounded`: the query deadline (ms) instead of the control default (a command's replica step deadline). */
  readonly queryTimeoutMs?: number;
  /**
   * Instead of deadlines: statements may wait (on locks) for as long as the
   * server answers; every this many ms while one runs the server is asked
   * about it on a fresh session, and one that does not answer fails this
   * session's statements with a LockstepError naming the node (unreachable).
   */
  readonly answerWatchMs?: number;
}

/**
 * What attach, detach, doctor, resync, pause and status need of the nodes:
 * sessions with their stores, the locks, slot creation, table and sequence
 * copies. A connection that fails throws a LockstepError naming the node.
 */
export interface LockstepCluster {
  primary(url: string, options?: SessionOptions): Promise<PrimarySession>;
  replica(name: string, url: string, options?: SessionOptions): Promise<ReplicaSession>;
  /** The stream's lock of `purpose` (default: the coordinator lock), not taken yet. */
  streamLock(url: string, stream: string, purpose?: StreamLockPurpose): StreamLockPort;
  /** Takes a replica's resync lock; throws when another process holds it. */
  takeResyncGuard(replica: string, url: string, stream: string): Promise<ResyncGuardPort>;
  /** A replica's agent lock (`lockstep agent`, with bus; not taken yet). */
  replicaAgentLock(replica: string, url: string, stream: string): ReplicaLockPort;
  /** Opens the session an attach keeps its join holds on. */
  openJoinHolds(url: string, stream: string): Promise<JoinHoldSession>;
  createSlot(url: string, slot: string, options?: SlotCreation): Promise<CreatedSlot>;
  /**
   * Copies one table to each of the job's replicas from one primary read, and
   * records it on each, in one transaction per replica; each one's outcome.
   */
  copyTable(job: TableCopyJob): Promise<TableCopyOutcome[]>;
  /** Moves the replicas' sequences of the publication's tables up to the primary's values. */
  syncSequences(
    primaryUrl: string,
    publication: string,
    replicas: ReadonlyArray<{ name: string; url: string }>,
  ): Promise<SequenceSyncResult>;
  /** Creates or upgrades the control schema on every node. */
  migrateControlSchemas(nodes: ReadonlyArray<{ name: string; url: string }>): Promise<void>;
}
