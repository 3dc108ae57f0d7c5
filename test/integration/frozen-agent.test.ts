import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, rowCount } from '../support/compare-nodes.js';
import { insertIds } from '../support/frozen-session.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// An active agent frozen (SIGSTOP) with nothing else failing: its lock session on the replica stays
// open, so only the server's idle bound on that session lets the standing-by agent take over.
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
  config: {
    // Also how long the replica lets a frozen agent's transaction hold its rows.
    applyTimeoutMs: 10_000,
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replica = () => clusters.replicas[0] as PostgresCluster;

describe('an active agent frozen', () => {
  it('loses the replica to the agent standing by, which applies every row once; thawed, it stands by', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const frozen = startAgent(clusters.configFile, 'replica1');
    let standby: LockstepProcess | null = null;
    try {
      await eventually(async () => !!frozen.logEvent('agent-active'), 'agent 1 active');
      const second = startAgent(clusters.configFile, 'replica1');
      standby = second;
      await eventually(async () => !!second.logEvent('agent-standby'), 'agent 2 standing by');
      await insertIds(clusters.primary, 1, 50);
      await eventually(async () => (await rowCount(replica(), 't')) === 50, 'agent 1 applying');
      frozen.kill('SIGSTOP');
      await insertIds(clusters.primary, 51, 150);
      await eventually(async () => !!second.logEvent('agent-active'), 'agent 2 taking over');
      await eventually(async () => (await rowCount(replica(), 't')) === 150, 'agent 2 applying');
      frozen.kill('SIGCONT');
      await eventually(async () => !!frozen.logEvent('agent-lock-lost'), 'agent 1 noticing');
      await insertIds(clusters.primary, 151, 200);
      await eventually(async () => (await rowCount(replica(), 't')) === 200, 'every row once');
    } finally {
      frozen.kill('SIGCONT');
      for (const p of [frozen, standby, publisher]) {
        if (!p) continue;
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  });
});
