import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
// A small window, so the returning replica's delta no longer fits in memory and the slot is re-read.
const clusters = useAttached({
  replicas: 1,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  config: { windowChanges: 2_000 },
});

/** Takes the replica away while `away` runs: its server stopped, or its database refusing connections. */
type Outage = (replica: PostgresCluster, away: () => Promise<void>) => Promise<void>;

const serverStopped: Outage = async (replica, away) => {
  await replica.stopServer('immediate');
  await away();
  await replica.startServer();
};

// Connections are refused with SQLSTATE 55000, not a network error: a failure of another kind.
const connectionsRefused: Outage = async (replica, away) => {
  const admin = new pg.Client({ connectionString: replica.urlFor({ database: 'template1' }) });
  await admin.connect();
  try {
    await admin.query('ALTER DATABASE postgres ALLOW_CONNECTIONS false');
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres'",
    );
    await away();
    await admin.query('ALTER DATABASE postgres ALLOW_CONNECTIONS true');
  } finally {
    await admin.end();
  }
};

describe('the only replica going away', () => {
  it.each([
    ['its server stopped', serverStopped],
    ['its database refusing connections', connectionsRefused],
  ])(
    'catches up once it is back (%s), though no replica could take packets meanwhile',
    async (_, outage) => {
      const [r1] = clusters.replicas as [PostgresCluster];
      const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      const workload = backgroundTpcb(clusters.primary.url, {
        branches: 1,
        accountsPerBranch: 2_000,
      });
      try {
        await waitForMarker(clusters.primary, clusters.replicas);
        await outage(r1, async () => {
          await eventually(
            async () => sidecar.logEvent('replica-stopped', { replica: 'replica1' }) !== undefined,
            'replica1 to be halted',
          );
          // More than the window holds is written while the replica is away.
          await new Promise((r) => setTimeout(r, 3_000));
        });
        await workload.stop();
        await waitForMarker(clusters.primary, clusters.replicas, 60_000);
        await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      } finally {
        await workload.stop();
        sidecar.kill('SIGTERM');
        expect(await sidecar.exited).toBe(0);
      }
    },
  );
});
