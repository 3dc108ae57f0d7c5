import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { type LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';

// A standby agent whose replica restarts while it waits for the lock: it waits the restart out.
const replication = useReplication('bus', {
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
});

describe('a standby agent', () => {
  it('waits out its replica restarting instead of exiting; the replica converges', async () => {
    const replica = replication.replicas[0] as PostgresCluster;
    replication.start();
    const first = replication.applier('replica1');
    let second: LockstepProcess | null = null;
    try {
      await eventually(async () => first.logEvent('agent-active') !== undefined, 'agent 1 active');
      const standby = startAgent(replication.configFile, 'replica1');
      second = standby;
      await eventually(async () => standby.logEvent('agent-standby') !== undefined, 'standing by');
      await replica.stopServer('fast');
      // It met the replica down (its lock attempt failed) and goes on trying.
      await eventually(
        async () => standby.logEvent('agent-lock-failed') !== undefined,
        'the standby meeting its replica down',
      );
      expect(standby.child.exitCode).toBeNull();
      await replica.startServer();
      await replication.primary.query('INSERT INTO t SELECT generate_series(1, 100)');
      await replication.converged();
      await expectIdentical(replication.primary, replication.replicas, ['t']);
      expect(standby.child.exitCode).toBeNull();
      expect(first.child.exitCode).toBeNull();
    } finally {
      second?.kill('SIGTERM');
      if (second) expect(await second.exited).toBe(0);
    }
  });
});
