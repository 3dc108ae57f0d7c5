import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { controlMigrations } from '../../migrations/index.js';
import { clientConfig } from './connection-url.js';

/** The schema holding lockstep's own tables on every node. */
export const CONTROL_SCHEMA = 'lockstep';

/** A Kysely handle on one node, for lockstep's control tables. */
export function controlDb(url: string): Kysely<unknown> {
  const pool = new pg.Pool({ ...clientConfig(url, 'lockstep-control'), max: 2 });
  pool.on('error', () => undefined);
  return new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Creates or upgrades the control schema on a node (kysely migrations, with
 * their bookkeeping inside the `lockstep` schema too).
 */
export async function migrateControlSchema(url: string): Promise<void> {
  const db = controlDb(url);
  try {
    await sql`CREATE SCHEMA IF NOT EXISTS lockstep`.execute(db);
    const migrator = new Migrator({
      db,
      provider: controlMigrations,
      migrationTableSchema: CONTROL_SCHEMA,
    });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  } finally {
    await db.destroy();
  }
}
