import type { Kysely } from 'kysely';

/**
 * What a stream was attached with: the `tables` patterns and whether DDL is
 * captured. A later attach (adding a replica) compares its configuration
 * with them and refuses a difference instead of changing the publication or
 * the capture under the running stream. Null: attached before this column.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('lockstep.streams')
    .addColumn('tables', 'jsonb')
    .addColumn('capture_ddl', 'boolean')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('lockstep.streams')
    .dropColumn('tables')
    .dropColumn('capture_ddl')
    .execute();
}
