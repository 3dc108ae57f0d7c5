import { existsSync } from 'node:fs';
import path from 'node:path';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { benchProvider, waitOnAll } from '../../support/bench-cluster.js';
import { dsn, type System } from '../system.js';
import { walsendersGone } from './native.js';

/** pgbench_history has no primary key: pglogical replicates it only in an insert-only set. */
const INSERT_ONLY = ['pgbench_history'];

/** Why pglogical cannot run here (its library is not installed), or null. */
export function pglogicalMissing(): string | null {
  const lib = path.join(benchProvider.binaries.bin, '..', 'lib', 'pglogical.so');
  if (existsSync(lib)) return null;
  return `pglogical: column skipped, ${lib} is missing (apt-get install -y postgresql-${benchProvider.binaries.major}-pglogical)`;
}

/** Provider side, as its README sets it up: node, then every table in a replication set. */
async function setUpProvider(primary: PostgresCluster): Promise<void> {
  await primary.query(`CREATE EXTENSION pglogical;
    SELECT pglogical.create_node(node_name := 'provider', dsn := '${dsn(primary)}');`);
  const tables = await primary.query<{ name: string }>(
    `SELECT quote_ident(relname) AS name FROM pg_class
      WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`,
  );
  for (const { name } of tables) {
    const set = INSERT_ONLY.includes(name) ? 'default_insert_only' : 'default';
    await primary.query(
      `SELECT pglogical.replication_set_add_table('${set}', 'public.${name}', synchronize_data := true)`,
    );
  }
}

/**
 * pglogical 2 (Debian's postgresql-15-pglogical): a provider node on the
 * primary, a subscriber node and one subscription per replica with
 * synchronize_data; paused with alter_subscription_disable / _enable.
 */
export function pglogicalSystem(): System {
  return {
    name: 'pglogical',
    settings: { shared_preload_libraries: 'pglogical' },
    needsSchema: true,
    replicating: true,
    async sync(primary, replicas) {
      await setUpProvider(primary);
      await Promise.all(
        replicas.map((r, i) =>
          r.query(`CREATE EXTENSION pglogical;
            SELECT pglogical.create_node(node_name := 'subscriber${i}', dsn := '${dsn(r)}');
            SELECT pglogical.create_subscription(subscription_name := 'sub${i}',
              provider_dsn := '${dsn(primary)}',
              replication_sets := ARRAY['default', 'default_insert_only'],
              synchronize_structure := false, synchronize_data := true, forward_origins := '{}');`),
        ),
      );
      // The subscription's initial copy is done and it streams (status
      // 'replicating'), and no table is still being synchronized.
      await Promise.all(
        replicas.map((r, i) =>
          waitOnAll(
            [r],
            `(SELECT status FROM pglogical.show_subscription_status('sub${i}')) = 'replicating'
             AND NOT EXISTS (SELECT 1 FROM pg_class c, pglogical.show_subscription_table('sub${i}', c.oid) s
               WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                 AND s.status NOT IN ('synchronized', 'replicating'))`,
          ),
        ),
      );
    },
    async pause(primary, replicas) {
      await Promise.all(
        replicas.map((r, i) =>
          r.query(`SELECT pglogical.alter_subscription_disable('sub${i}', immediate := true)`),
        ),
      );
      await walsendersGone(primary);
    },
    async resume(_primary, replicas) {
      await Promise.all(
        replicas.map((r, i) =>
          r.query(`SELECT pglogical.alter_subscription_enable('sub${i}', immediate := true)`),
        ),
      );
    },
    peakRssMB: () => null,
    stop: async () => undefined,
  };
}
