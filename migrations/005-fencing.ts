import { type Kysely, sql } from 'kysely';

/**
 * Fencing (one coordinator at a time). `streams.epoch` is raised by every
 * process that takes the coordinator lock, on the lock's own session; it is
 * part of every gid, and a decision row is written only while the epoch is
 * still the writer's (checked under a row lock), so a deposed holder that
 * still runs can neither share a gid with the new one nor commit a round.
 * `replica_status.stale_since` makes a stale mark durable: a replica marked
 * stale stays out of the resume point across restarts until it is resynced.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('lockstep.streams')
    .addColumn('epoch', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('lockstep.decisions').addColumn('epoch', 'bigint').execute();
  await db.schema
    .alterTable('lockstep.replica_status')
    .addColumn('stale_since', sql`timestamptz`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('lockstep.replica_status').dropColumn('stale_since').execute();
  await db.schema.alterTable('lockstep.decisions').dropColumn('epoch').execute();
  await db.schema.alterTable('lockstep.streams').dropColumn('epoch').execute();
}
