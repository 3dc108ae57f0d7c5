import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';

/**
 * A node's index and constraint definitions in `public`, as text: what a
 * load that drops and rebuilds them must leave exactly as it found.
 */
export async function definitionsOf(node: PostgresCluster): Promise<string[]> {
  const indexes = await node.query<{ d: string }>(
    `SELECT format('%s %s clustered=%s comment=%s', x.indexname, x.indexdef, i.indisclustered,
                   obj_description(i.indexrelid, 'pg_class')) AS d
       FROM pg_indexes x JOIN pg_index i ON i.indexrelid = format('%I.%I', x.schemaname, x.indexname)::regclass
      WHERE x.schemaname = 'public' ORDER BY x.indexname`,
  );
  const constraints = await node.query<{ d: string }>(
    `SELECT format('%s %s %s valid=%s comment=%s', conrelid::regclass, conname, pg_get_constraintdef(oid),
                   convalidated, obj_description(oid, 'pg_constraint')) AS d
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conname`,
  );
  return [...indexes, ...constraints].map((r) => r.d);
}

/** The copied tables a replica records for the stream, with whether their foreign keys were checked. */
export async function recordedCopies(node: PostgresCluster): Promise<string[]> {
  const rows = await node.query<{ t: string }>(
    `SELECT format('%s:%s', table_name, foreign_keys_checked::text) AS t
       FROM lockstep.synced_tables ORDER BY table_name`,
  );
  return rows.map((r) => r.t);
}

/** Waits until `node` has no session of a lockstep copy left (its transaction ended). */
export async function copySessionsGone(node: PostgresCluster, what: string): Promise<void> {
  await eventually(
    async () =>
      (await node.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'lockstep-copy'`))
        .length === 0,
    what,
  );
}
