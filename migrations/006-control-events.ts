import { type Kysely, sql } from 'kysely';

/**
 * Control events (captured DDL, migration markers) are rows of this table,
 * inserted and deleted again in the transaction they describe: the stream
 * carries the insert, and Postgres's permissions vouch that lockstep wrote
 * it. Nobody but its owner (lockstep's role) and lockstep's `SECURITY
 * DEFINER` capture function may write it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE lockstep.control_events (
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              kind text NOT NULL,
              payload text NOT NULL)`.execute(db);
  await sql`REVOKE ALL ON lockstep.control_events FROM PUBLIC`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE lockstep.control_events`.execute(db);
}
