import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';

/**
 * Takes the coordinator lock from its holder for the test: queued behind the
 * holder's session, then granted when that session is terminated (before the
 * holder can try again). Returns the test's session, which holds it.
 */
export async function deposeCoordinator(primary: PostgresCluster): Promise<pg.Client> {
  const [key] = await primary.query<{ classid: number; objid: number; pid: number }>(
    `SELECT l.classid::int AS classid, l.objid::int AS objid, l.pid
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'lockstep-coordinator'`,
  );
  if (!key) throw new Error('nobody holds the coordinator lock');
  const session = new pg.Client({ connectionString: primary.url });
  await session.connect();
  const taken = session.query('SELECT pg_advisory_lock($1, $2)', [key.classid, key.objid]);
  await eventually(async () => {
    const [w] = await primary.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
    );
    return w?.n === 1;
  }, 'the test queued for the lock');
  await primary.query('SELECT pg_terminate_backend($1)', [key.pid]);
  await taken;
  return session;
}
