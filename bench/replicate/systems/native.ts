import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { sleep } from '../../../plugin/support/sleep.js';
import { waitOnAll } from '../../support/bench-cluster.js';
import { dsn, type System } from '../system.js';

/** Until the primary has no walsender left: the subscriptions stopped reading. */
export async function walsendersGone(primary: PostgresCluster): Promise<void> {
  for (;;) {
    const rows = await primary.query(`SELECT 1 FROM pg_stat_replication`);
    if (rows.length === 0) return;
    await sleep(50);
  }
}

/**
 * PostgreSQL's logical replication: a publication of every table, one
 * subscription per replica with copy_data, default worker settings
 * (max_sync_workers_per_subscription = 2), as a user sets it up.
 */
export function nativeSystem(): System {
  return {
    name: 'native',
    needsSchema: true,
    replicating: true,
    async prepare(_primary, replicas) {
      // The bench's replicas are copies of one initdb, created alike: same
      // system identifier and subscription OID, hence the same table-sync slot
      // names and a 5 s retry per clash (stages/initial-sync.ts). Burning
      // OIDs on the second gives its subscription another, as a user's has.
      await Promise.all(
        replicas.map(async (r, i) => {
          for (let k = 0; k < i; k++)
            await r.query('CREATE TABLE oid_skip (); DROP TABLE oid_skip');
        }),
      );
    },
    async sync(primary, replicas) {
      await primary.query('CREATE PUBLICATION pub FOR ALL TABLES');
      await Promise.all(
        replicas.map((r, i) =>
          r.query(
            `CREATE SUBSCRIPTION sub${i} CONNECTION '${dsn(primary)}' PUBLICATION pub WITH (copy_data = true)`,
          ),
        ),
      );
      // Every table's copy is done (syncdone or ready) on both: read from the
      // catalog each 5 ms, not slept for.
      await waitOnAll(
        replicas,
        `EXISTS (SELECT 1 FROM pg_subscription_rel) AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel WHERE srsubstate NOT IN ('s','r'))`,
      );
    },
    async pause(primary, replicas) {
      await Promise.all(replicas.map((r, i) => r.query(`ALTER SUBSCRIPTION sub${i} DISABLE`)));
      await walsendersGone(primary);
    },
    async resume(_primary, replicas) {
      await Promise.all(replicas.map((r, i) => r.query(`ALTER SUBSCRIPTION sub${i} ENABLE`)));
    },
    peakRssMB: () => null,
    stop: async () => undefined,
  };
}
