import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { appliedVersion, eventually, expectIdentical } from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../../support/tpcb-workload.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];

describe.each(transports)('a replica down, then back (%s)', (transport) => {
  const replication = useReplication(transport, {
    replicas: 2,
    schema: TPCB_SCHEMA,
    seed: tpcbSeed(1, 2_000),
  });

  it('gets the delta it missed while the other kept applying: nothing lost, nothing doubled', async () => {
    const [r1, r2] = replication.replicas as [PostgresCluster, PostgresCluster];
    replication.start();
    const workload = backgroundTpcb(replication.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    try {
      await eventually(async () => (await appliedVersion(r2)) > 50, 'replica2 to apply packets');
      await r2.stopServer('immediate');
      const left = await appliedVersion(r1);
      // The other replica never stops.
      await eventually(async () => (await appliedVersion(r1)) > left + 100, 'replica1 to go on');
      await r2.startServer();
      await workload.stop();
      await replication.converged();
      // history has no key: a packet applied twice would leave a row twice.
      await expectIdentical(replication.primary, replication.replicas, TABLES);
      expect(await appliedVersion(r2)).toBe(await appliedVersion(r1));
    } finally {
      await workload.stop();
    }
  });
});
