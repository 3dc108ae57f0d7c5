import type { Kysely } from 'kysely';

/**
 * `replica_status.database_id`: the identity of the database the sidecar's
 * agent for that replica is connected to (see database-identity.ts). attach
 * relies on a running sidecar for a joining replica only when it applies to
 * the very database attach copies into, not just to one of the same name.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.replica_status').addColumn('database_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.replica_status').dropColumn('database_id').execute();
}
