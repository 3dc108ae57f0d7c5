import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 1_000),
  config: {
    twoPhase: { tag: false },
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replica = () => clusters.replicas[0] as PostgresCluster;

async function historyRows(): Promise<number> {
  const [row] = await clusters.primary.query<{ n: string }>('SELECT count(*) AS n FROM history');
  return Number(row?.n);
}

describe('lockstep agent on a bus that hangs', () => {
  it('goes on after NATS nodes paused with SIGSTOP (one, then all) resume; nothing lost or doubled', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = new LockstepProcess([
      'agent',
      '--config',
      clusters.configFile,
      '--replica',
      'replica1',
    ]);
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 1_000,
    });
    try {
      await eventually(async () => (await appliedVersion(replica())) > 50, 'the agent to apply');
      // One node hangs: the cluster keeps quorum, a client on that node must find another.
      nats.cluster.signal(0, 'SIGSTOP');
      const before = await appliedVersion(replica());
      await eventually(
        async () => (await appliedVersion(replica())) > before + 50,
        'the agent to apply with a node paused',
        120_000,
      );
      nats.cluster.signal(0, 'SIGCONT');
      // The whole cluster hangs while the primary goes on.
      const rows = await historyRows();
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGSTOP');
      await eventually(async () => (await historyRows()) > rows + 200, 'the primary to go on');
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      const resumed = await appliedVersion(replica());
      await eventually(
        async () => (await appliedVersion(replica())) > resumed + 50,
        'the agent to apply after the cluster resumed',
        120_000,
      );
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      // history has no key: a packet applied twice would leave its rows twice.
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      await workload.stop();
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      for (const p of [agent, publisher]) {
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  });
});
