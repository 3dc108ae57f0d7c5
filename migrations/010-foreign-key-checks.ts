import type { Kysely } from 'kysely';

/**
 * A table copy loads with foreign keys unchecked (as native logical
 * replication does); attach checks them once every table of the replica is
 * in. `foreign_keys_checked` false: the copy committed, its check has not
 * (an interrupted attach finishes it on the next run). Rows from before
 * this column were never to be checked.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('lockstep.synced_tables')
    .addColumn('foreign_keys_checked', 'boolean', (c) => c.notNull().defaultTo(true))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.synced_tables').dropColumn('foreign_keys_checked').execute();
}
