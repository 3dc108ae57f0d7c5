import { type Kysely, sql } from 'kysely';

/**
 * On every node: the gid of each migration round that ran here, written in
 * the migration's own prepared transaction. A COMMIT PREPARED that finds the
 * gid no longer prepared tells from it whether an earlier attempt committed
 * (its answer lost) or the transaction was rolled back outside lockstep. The
 * history row cannot say: a down migration deletes it, `exec` writes none.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE lockstep.migration_gids (
              gid text PRIMARY KEY,
              stream text NOT NULL,
              prepared_at timestamptz NOT NULL DEFAULT now())`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE lockstep.migration_gids`.execute(db);
}
