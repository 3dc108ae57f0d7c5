import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/**
 * Makes `replica` look attached by a lockstep that copied no migration
 * history: the primary's migration `name` is dated an hour before the
 * replica's copy began, and the replica's row of it is deleted.
 */
export async function lackingSinceOlderAttach(
  primary: PostgresCluster,
  replica: PostgresCluster,
  name: string,
): Promise<void> {
  const [copy] = await replica.query<{ at: string }>(
    `SELECT (min(copied_at) - interval '1 hour')::text AS at FROM lockstep.synced_tables`,
  );
  await primary.query(`UPDATE lockstep.migrations SET applied_at = $1 WHERE name = $2`, [
    copy?.at,
    name,
  ]);
  await replica.query('DELETE FROM lockstep.migrations WHERE name = $1', [name]);
}
