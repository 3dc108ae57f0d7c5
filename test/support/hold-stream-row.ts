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
  // A server stopped under it (a failing test's teardown) must not crash the worker.
  app.on('error', () => undefined);
  await app.connect();
  await app.query('BEGIN');
  const locked = await app.query('SELECT 1 FROM lockstep.streams WHERE stream = $1 FOR UPDATE', [
    stream,
  ]);
  if (locked.rowCount !== 1) throw new Error(`no row of stream ${stream} in lockstep.streams`);
  let held = true;
  return async () => {
    if (!held) return;
    held = false;
    await app.query('ROLLBACK');
    await app.end();
  };
}
