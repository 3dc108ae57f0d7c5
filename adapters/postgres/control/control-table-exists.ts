import { sql } from 'kysely';
import type { ControlDb, LockstepSchema } from './lockstep-schema.js';

/** Whether a control table exists on the node (a control schema older than it, or none, has not). */
export async function controlTableExists(db: ControlDb, table: keyof LockstepSchema) {
  const { rows } = await sql<{
    exists: boolean;
  }>`SELECT to_regclass(${table}) IS NOT NULL AS exists`.execute(db);
  return rows[0]?.exists === true;
}
