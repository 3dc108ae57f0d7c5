import type { Kysely } from 'kysely';

/**
 * `lockstep pause` / `resume`: when set, the stream is paused (since then).
 * Kept on the primary with the stream, so a paused stream stays paused when
 * the sidecar restarts, as a disabled subscription does.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.streams').addColumn('paused_at', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.streams').dropColumn('paused_at').execute();
}
