import { type Kysely, sql } from 'kysely';

/**
 * lockstep's own tables, in the `lockstep` schema on every node (the primary
 * uses the status and stream tables, replicas the applied and synced tables).
 * Changes to this schema are never replicated.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A replica's position in a stream: written in the same transaction as the data it applies.
  await db.schema
    .createTable('lockstep.applied')
    .addColumn('stream', 'text', (c) => c.primaryKey())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('lsn', sql`pg_lsn`, (c) => c.notNull())
    .addColumn('commit_time', 'timestamptz')
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // Tables copied to a replica, and the LSN their copy is consistent with: changes
  // committed before it are already in the copy and are skipped for that table.
  await db.schema
    .createTable('lockstep.synced_tables')
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('schema_name', 'text', (c) => c.notNull())
    .addColumn('table_name', 'text', (c) => c.notNull())
    .addColumn('copy_lsn', sql`pg_lsn`, (c) => c.notNull())
    .addColumn('rows', 'bigint', (c) => c.notNull())
    .addColumn('copied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('synced_tables_pk', ['stream', 'schema_name', 'table_name'])
    .execute();
  // On the primary: the stream lockstep attached (slot, publication, start).
  await db.schema
    .createTable('lockstep.streams')
    .addColumn('stream', 'text', (c) => c.primaryKey())
    .addColumn('slot', 'text', (c) => c.notNull())
    .addColumn('publication', 'text', (c) => c.notNull())
    .addColumn('start_lsn', sql`pg_lsn`, (c) => c.notNull())
    .addColumn('attached_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('lsn', sql`pg_lsn`)
    .addColumn('commit_time', 'timestamptz')
    .addColumn('updated_at', 'timestamptz')
    .execute();
  // On the primary: what the sidecar last knew of each replica, so `status` works without it.
  await db.schema
    .createTable('lockstep.replica_status')
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('replica', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    // Last durable position the sidecar saw: bounds the slot while the replica is unreachable.
    .addColumn('version', 'bigint')
    .addColumn('lsn', sql`pg_lsn`)
    .addColumn('error', 'text')
    .addColumn('error_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('replica_status_pk', ['stream', 'replica'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['replica_status', 'streams', 'synced_tables', 'applied']) {
    await db.schema.dropTable(`lockstep.${table}`).ifExists().execute();
  }
}
