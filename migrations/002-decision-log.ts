import { type Kysely, sql } from 'kysely';

/**
 * The two-phase decision log (on the primary). A `commit` row committed here
 * is the commit point of a round; no row means abort (presumed abort). A
 * recoverer writes `abort` for an undecided gid before rolling it back, so a
 * coordinator still deciding can never commit it afterwards (the primary key
 * makes the two writes exclusive).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('lockstep.decisions')
    .addColumn('gid', 'text', (c) => c.primaryKey())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('round', 'bigint', (c) => c.notNull())
    .addColumn('version_from', 'bigint', (c) => c.notNull())
    .addColumn('version_to', 'bigint', (c) => c.notNull())
    .addColumn('decision', 'text', (c) => c.notNull().check(sql`decision IN ('commit', 'abort')`))
    .addColumn('participants', sql`text[]`, (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // What the sidecar last reported of two-phase rounds (a held round and who refuses it), for `status`.
  await db.schema.alterTable('lockstep.streams').addColumn('two_phase', 'jsonb').execute();
  // Which sidecar holds the coordinator lock (host:pid), and since when.
  await db.schema.alterTable('lockstep.streams').addColumn('active_sidecar', 'text').execute();
  await db.schema.alterTable('lockstep.streams').addColumn('active_since', 'timestamptz').execute();
  await db.schema
    .createIndex('decisions_stream_round')
    .on('lockstep.decisions')
    .columns(['stream', 'round'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('lockstep.decisions').ifExists().execute();
  for (const column of ['two_phase', 'active_sidecar', 'active_since'])
    await db.schema.alterTable('lockstep.streams').dropColumn(column).execute();
}
