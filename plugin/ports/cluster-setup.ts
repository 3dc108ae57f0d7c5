import type { Lsn } from '../protocol/index.js';
import type { CatalogTable, TableName } from './catalog-table.js';
import type { LockstepError } from './lockstep-error.js';
import type { MigrationHistoryEntry } from './migration-session.js';

/** A table's size on the primary, known before its copy starts. */
export interface TableSize {
  /** Heap and TOAST bytes. */
  readonly bytes: number;
  /** The planner's row estimate (at least 1). */
  readonly rows: number;
}

/** What attach sets up on the primary: the publication, the DDL capture; and what doctor checks there. */
export interface PrimarySetup {
  /** Creates or replaces the publication: `tables`, and every table of `schemas`. */
  ensurePublication(
    publication: string,
    tables: readonly TableName[],
    schemas: readonly string[],
  ): Promise<void>;
  publicationExists(publication: string): Promise<boolean>;
  dropPublication(publication: string): Promise<void>;
  /** The tables the publication streams. */
  publishedTables(publication: string): Promise<TableName[]>;
  installDdlCapture(): Promise<void>;
  removeDdlCapture(): Promise<void>;
  ddlCaptureInstalled(): Promise<boolean>;
  /** Sizes of `tables` by `schema.name` (unquoted), for progress estimates. */
  tableSizes(tables: readonly TableName[]): Promise<Map<string, TableSize>>;
  /** What logical replication needs of the primary and the role; every problem found. */
  checkPrerequisites(options: { needFreeSlot: boolean }): Promise<LockstepError[]>;
  /** The primary's migration history (`lockstep.migrations`), in name order. */
  migrationHistory(): Promise<MigrationHistoryEntry[]>;
}

/** A `lockstep` schema on a node that lockstep did not create there (it came with a dump of the primary). */
export interface ForeignControlSchema {
  /** Its tables that hold rows (`lockstep.name`). */
  readonly tablesWithRows: readonly string[];
  /** Event triggers that run its functions. */
  readonly eventTriggers: readonly string[];
  /** What to do on the replica instead, should lockstep refuse to remove it. */
  readonly fix: string;
}

/** What attach does on a replica besides the copy. */
export interface ReplicaSetup {
  /** Creates a table with the primary's definition. */
  createTable(table: CatalogTable): Promise<void>;
  /** The identity of the database this session is connected to. */
  databaseId(): Promise<string>;
  /** The node's `lockstep` schema when lockstep did not create it, else null. */
  findForeignControlSchema(): Promise<ForeignControlSchema | null>;
  /** Removes a foreign schema that holds no rows (RESTRICT, one transaction). */
  dropForeignControlSchema(foreign: ForeignControlSchema): Promise<void>;
  /**
   * Checks the foreign keys of the stream's copied tables that were loaded
   * unchecked, and records each table checked; throws when rows break one,
   * or when the replica stops answering (`stallMs`: how long a check may
   * wait on a lock or go unanswered; a check still working goes on).
   */
  checkCopiedForeignKeys(stream: string, stallMs: number): Promise<void>;
  /**
   * Records the entries of the primary's migration history this replica
   * lacks (name, checksum, when; its stream version as a migration records
   * it); the names added.
   */
  adoptMigrationHistory(
    stream: string,
    entries: readonly MigrationHistoryEntry[],
  ): Promise<string[]>;
}

/** A replica a table copy feeds. */
export interface CopyReplica {
  readonly name: string;
  readonly url: string;
  /** A resync's copy: the backend pid of the guard session that must still hold the replica's resync lock. */
  readonly guardPid?: number;
}

/** One table copy: one read of the primary's snapshot, fed to every replica that needs the table. */
export interface TableCopyJob {
  readonly stream: string;
  readonly table: CatalogTable;
  readonly primaryUrl: string;
  /** Exported snapshot the copy reads from. */
  readonly snapshot: string;
  /** LSN the snapshot is consistent with: changes committed before it are in the copy. */
  readonly copyLsn: Lsn;
  readonly replicas: readonly CopyReplica[];
  /**
   * A replica that takes no rows for this long (a stopped or frozen server,
   * a lock on the table there) drops out of the copy, so it cannot hold the
   * others back; the attach then fails naming it (`applyTimeoutMs`).
   */
  readonly stallTimeoutMs: number;
  /** Called with the number of rows a replica has been sent so far. */
  readonly onProgress?: (replica: string, rows: number) => void;
}

/** A step after a table's copy committed that failed (ANALYZE, the warm-up): the copy stays. */
export interface TableCopyWarning {
  readonly phase: string;
  readonly problem: string;
}

/** One replica's outcome of a table copy: its rows committed and recorded, or why not. */
export type TableCopyOutcome =
  | {
      readonly replica: string;
      readonly rows: number;
      readonly error?: undefined;
      readonly warnings?: readonly TableCopyWarning[];
    }
  | { readonly replica: string; readonly error: LockstepError };

/** What the sequence copy did: sequences moved, replicas it could not reach, primary sequences held (not read). */
export interface SequenceSyncResult {
  readonly advanced: Record<string, number>;
  readonly failed: Record<string, string>;
  /** `schema.name` of the primary's sequences an open transaction holds (TRUNCATE … RESTART IDENTITY). */
  readonly held: readonly string[];
}
