import { type Kysely, sql } from 'kysely';

/**
 * The history of the user's migrations run through `lockstep migrate`, on
 * every node, written in the same prepared transaction as the migration
 * itself: a node has the row exactly when it has the migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('lockstep.migrations')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('checksum', 'text', (c) => c.notNull())
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // The node's stream version when it was applied.
    .addColumn('version', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('lockstep.migrations').ifExists().execute();
}
