import { type Kysely, sql } from 'kysely';

/**
 * On the primary: a replica being copied to join a stream holds the slot at
 * its starting point (`version`, `lsn`) while attach copies it, without the
 * coordinator lock: every sidecar reads these rows and never confirms the
 * slot past one. `holder_pid` and `holder_started` name attach's session on
 * the primary, so a hold left by a killed attach can be told from a live one.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE lockstep.join_holds (
              stream text NOT NULL,
              replica text NOT NULL,
              version bigint NOT NULL,
              lsn pg_lsn NOT NULL,
              holder text NOT NULL,
              holder_pid integer NOT NULL,
              holder_started timestamptz NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (stream, replica))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE lockstep.join_holds`.execute(db);
}
