import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 1_000),
  // Read when the file is written (in beforeAll): the NATS cluster is up by then.
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

function replica(index: number): PostgresCluster {
  return clusters.replicas[index] as PostgresCluster;
}

const agent = (replica: string) =>
  new LockstepProcess(['agent', '--config', clusters.configFile, '--replica', replica]);

async function stopped(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

describe('lockstep agent', () => {
  it('applies the packets lockstep run publishes, one agent beside each replica', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agents = [agent('replica1'), agent('replica2')];
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 1_000,
    });
    try {
      await eventually(
        async () => (await appliedVersion(replica(1))) > 100,
        'replica2 to apply packets from the bus',
      );
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      for (const a of agents) expect(a.logEvent('agent-active')).toBeDefined();
    } finally {
      await workload.stop();
      for (const a of agents) await stopped(a);
      await stopped(publisher);
    }
  });

  it('is one per replica: a second stands by and takes over once the first is killed mid-batch; nothing lost or doubled', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const first = agent('replica1');
    const other = agent('replica2');
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 1_000,
    });
    let second: LockstepProcess | null = null;
    try {
      await eventually(async () => first.logEvent('agent-active') !== undefined, 'agent 1 active');
      second = agent('replica1');
      await eventually(
        async () => second?.logEvent('agent-standby', { replica: 'replica1' }) !== undefined,
        'agent 2 to stand by',
      );
      const before = await appliedVersion(replica(0));
      await eventually(
        async () => (await appliedVersion(replica(0))) > before + 50,
        'agent 1 to apply',
      );
      expect(second.logEvent('agent-active')).toBeUndefined();
      // Under load, a batch is nearly always open on the replica when the agent dies.
      first.kill('SIGKILL');
      await first.exited;
      await eventually(
        async () => second?.logEvent('agent-active', { replica: 'replica1' }) !== undefined,
        'agent 2 to take over',
      );
      const taken = await appliedVersion(replica(0));
      await eventually(
        async () => (await appliedVersion(replica(0))) > taken + 50,
        'agent 2 to apply',
      );
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      // history has no key: a packet applied twice would leave a row twice.
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      await workload.stop();
      if (second) await stopped(second);
      await stopped(other);
      await stopped(publisher);
    }
  });

  it('refuses a configuration without bus or a replica it does not name (exit 2)', async () => {
    const unknown = await lockstep(['agent', '--config', clusters.configFile, '--replica', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.output).toMatch(/no replica named "nope".*replica1, replica2/);
    const plain = writeConfig(clusters.primary, clusters.replicas);
    try {
      const noBus = await lockstep(['agent', '--config', plain.file, '--replica', 'replica1']);
      expect(noBus.code).toBe(2);
      expect(noBus.output).toMatch(/has no bus/);
    } finally {
      plain.remove();
    }
  });
});
