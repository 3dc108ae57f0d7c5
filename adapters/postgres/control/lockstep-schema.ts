import type { ColumnType, Generated, Kysely } from 'kysely';

/**
 * lockstep's control tables as Kysely sees them (the `lockstep` schema, see
 * migrations/). One interface per table; the stores in this folder are
 * written against it, so a column renamed in a migration and not here fails
 * the typecheck. `bigint` columns come back from `pg` as strings; `pg_lsn`
 * as text like `0/16B3748`; timestamps as `Date`.
 */
type BigIntColumn = ColumnType<string, string | number | bigint, string | number | bigint>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface AppliedTable {
  stream: string;
  version: BigIntColumn;
  lsn: string;
  commit_time: Timestamp | null;
  applied_at: DefaultTimestamp;
}

export interface SyncedTablesTable {
  stream: string;
  schema_name: string;
  table_name: string;
  copy_lsn: string;
  rows: BigIntColumn;
  copied_at: DefaultTimestamp;
  foreign_keys_checked: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface StreamsTable {
  stream: string;
  slot: string;
  publication: string;
  start_lsn: string;
  attached_at: DefaultTimestamp;
  version: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
  lsn: string | null;
  commit_time: Timestamp | null;
  updated_at: Timestamp | null;
  two_phase: unknown | null;
  active_sidecar: string | null;
  active_since: Timestamp | null;
  paused_at: Timestamp | null;
  epoch: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
  /** The `tables` patterns the stream was attached with (null: attached before 009). */
  tables: ColumnType<string[] | null, string | null, string | null>;
  capture_ddl: boolean | null;
}

export interface ReplicaStatusTable {
  stream: string;
  replica: string;
  state: string;
  version: BigIntColumn | null;
  lsn: string | null;
  error: string | null;
  error_at: Timestamp | null;
  updated_at: DefaultTimestamp;
  stale_since: Timestamp | null;
  database_id: string | null;
}

export interface DecisionsTable {
  gid: string;
  stream: string;
  round: BigIntColumn;
  version_from: BigIntColumn;
  version_to: BigIntColumn;
  decision: 'commit' | 'abort';
  participants: string[];
  decided_at: DefaultTimestamp;
  epoch: BigIntColumn | null;
}

export interface MigrationsTable {
  name: string;
  checksum: string;
  applied_at: DefaultTimestamp;
  version: BigIntColumn;
}

export interface MigrationGidsTable {
  gid: string;
  stream: string;
  prepared_at: DefaultTimestamp;
}

export interface ControlEventsTable {
  id: Generated<string>;
  kind: string;
  payload: string;
}

export interface JoinHoldsTable {
  stream: string;
  replica: string;
  version: BigIntColumn;
  lsn: string;
  holder: string;
  holder_pid: number;
  holder_started: Timestamp;
  created_at: DefaultTimestamp;
}

/** Every control table, by its qualified name. */
export interface LockstepSchema {
  'lockstep.applied': AppliedTable;
  'lockstep.synced_tables': SyncedTablesTable;
  'lockstep.streams': StreamsTable;
  'lockstep.replica_status': ReplicaStatusTable;
  'lockstep.decisions': DecisionsTable;
  'lockstep.migrations': MigrationsTable;
  'lockstep.migration_gids': MigrationGidsTable;
  'lockstep.control_events': ControlEventsTable;
  'lockstep.join_holds': JoinHoldsTable;
}

/** A Kysely handle typed over the control tables. */
export type ControlDb = Kysely<LockstepSchema>;

/** What {@link controlDbOn} needs of a session: `pg.Client` has it. */
export interface ControlSession {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}
