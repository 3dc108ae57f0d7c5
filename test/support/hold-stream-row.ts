import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/**
 * Holds the stream's row in lockstep.streams on `primary` (an open
 * transaction, as a frozen `lockstep pause` would) until the returned
 * function is called (again: nothing).
 */
export async function holdStreamRow(
  primary: PostgresCluster,
  stream = 'lockstep',
): Promise<() => Promise<void>> {
  const app = new pg.Client({ connectionString: primary.url });
  await app.connect();
  await app.query('BEGIN');
  await app.query('SELECT * FROM lockstep.streams WHERE stream = $1 FOR UPDATE', [stream]);
  let held = true;
  return async () => {
    if (!held) return;
    held = false;
    await app.query('ROLLBACK');
    await app.end();
  };
}
