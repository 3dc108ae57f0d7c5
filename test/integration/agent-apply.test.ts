import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { appliedVersion, eventually, expectIdentical } from '../support/compare-nodes.js';
import {
  type LockstepProcess,
  lockstep,
  startAgent,
  writeConfig,
} from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';

// Applying what the publisher sends, one agent per replica, runs on both transports in test/integration/shared/.
const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const replication = useReplication('bus', {
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 1_000),
});

function replica(index: number): PostgresCluster {
  return replication.replicas[index] as PostgresCluster;
}

describe('lockstep agent', () => {
  it('is one per replica: a second stands by and takes over once the first is killed mid-batch; nothing lost or doubled', async () => {
    replication.start();
    const first = replication.applier('replica1');
    const workload = backgroundTpcb(replication.primary.url, {
      branches: 1,
      accountsPerBranch: 1_000,
    });
    let second: LockstepProcess | null = null;
    try {
      await eventually(async () => first.logEvent('agent-active') !== undefined, 'agent 1 active');
      second = startAgent(replication.configFile, 'replica1');
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
      await replication.kill('replica1');
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
      await replication.converged();
      // history has no key: a packet applied twice would leave a row twice.
      await expectIdentical(replication.primary, replication.replicas, TABLES);
    } finally {
      await workload.stop();
      second?.kill('SIGTERM');
      if (second) expect(await second.exited).toBe(0);
    }
  });

  it('refuses a configuration without bus or a replica it does not name (exit 2)', async () => {
    const unknown = await lockstep([
      'agent',
      '--config',
      replication.configFile,
      '--replica',
      'nope',
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.output).toMatch(/no replica named "nope".*replica1, replica2/);
    const plain = writeConfig(replication.primary, replication.replicas);
    try {
      const noBus = await lockstep(['agent', '--config', plain.file, '--replica', 'replica1']);
      expect(noBus.code).toBe(2);
      expect(noBus.output).toMatch(/has no bus/);
    } finally {
      plain.remove();
    }
  });
});
