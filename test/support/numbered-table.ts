import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/** Table `t` (id, v) and the `marker` table that `waitForMarker` writes to. */
export const NUMBERED_SCHEMA =
  'CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE marker (id bigserial PRIMARY KEY);';

/** Inserts rows `from` … `from + n - 1` into `t`, one transaction (one packet) each. */
export async function insertNumbered(
  primary: PostgresCluster,
  from: number,
  n: number,
): Promise<void> {
  for (let i = from; i < from + n; i++) await primary.query('INSERT INTO t VALUES ($1, $1)', [i]);
}
