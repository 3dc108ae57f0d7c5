import type { Lsn, MigrationWork, TablePattern } from '../protocol/index.js';

/** What a migration step runs on: one connection inside the migration's transaction. */
export interface MigrationConnection {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  /** A Kysely instance over this same connection, for Kysely migration modules. */
  kysely(): unknown;
}

/**
 * One direction of a migration, run on one node's connection inside the
 * round's transaction; `sql` is its text when it is plain SQL (what an agent
 * on the bus can be given: a Kysely module's code cannot travel).
 */
export type MigrationStep = ((connection: MigrationConnection) => Promise<void>) & {
  readonly sql?: string;
};

/** What to record in the node's history, in the same transaction. */
export type HistoryChange =
  | { readonly op: 'insert'; readonly name: string; readonly checksum: string }
  | { readonly op: 'delete'; readonly name: string };

/** One applied migration in a node's history. */
export interface MigrationHistoryEntry {
  readonly name: string;
  readonly checksum: string;
  /** ISO-8601. */
  readonly appliedAt: string;
}

/** What one node runs for a migration round before PREPARE TRANSACTION. */
export interface MigrationPrepare {
  readonly gid: string;
  /** The primary's marker message, so the stream carries the migration as a version step only. */
  readonly marker: boolean;
  /** How long its statements wait for a lock, and how long its open transaction may sit idle (ms). */
  readonly lockTimeoutMs: number;
  readonly step: MigrationStep;
  readonly history: HistoryChange | null;
  /**
   * On the primary: the publication is brought up to date in the same
   * transaction (tables the migration created that the patterns match join
   * it), so their first rows are already streamed.
   */
  readonly publication?: {
    readonly name: string;
    readonly patterns: readonly TablePattern[];
    /** Schemas published whole (with captured DDL). */
    readonly schemas: readonly string[];
  };
  /** On a replica: replicated tables the migration created are recorded as in step (copy LSN 0/0). */
  readonly adoptTables?: readonly TablePattern[];
}

/** One node's side of a migration round (phase two is its {@link PhaseTwoNode}'s). */
export interface MigrationNodeSession {
  readonly node: string;
  /** Runs the step and the history change in one transaction, then PREPARE TRANSACTION. */
  prepare(options: MigrationPrepare): Promise<void>;
  /** The commit LSN of the last packet this replica applied (null when not attached). */
  appliedLsn(): Promise<Lsn | null>;
  /**
   * On the primary: commits the barrier every replica must reach before it
   * prepares; its LSN. `work` (with `bus`): the round's work, committed with
   * the barrier as a control event, the only thing an agent runs.
   */
  commitBarrier(gid: string, work?: MigrationWork): Promise<Lsn>;
  /** The node's migration history, in name order. */
  history(): Promise<MigrationHistoryEntry[]>;
  /** A replica's history and when its current copy of `stream` began (null: none copied), in one session. */
  replicaHistory(stream: string): Promise<ReplicaMigrationHistory>;
}

/** A replica's migration history and its copy time (`lockstep.synced_tables`, its clock). */
export interface ReplicaMigrationHistory {
  readonly history: MigrationHistoryEntry[];
  readonly copiedAt: string | null;
}
