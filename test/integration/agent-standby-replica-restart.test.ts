import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { type LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';

// Processes whose replica or bus restarts while they stand by or start: they wait, never exit.
const replication = useReplication('bus', {
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
});

describe('an agent and its replica restarting', () => {
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

  it('starting while its replica is down waits for it, then applies; SIGTERM while waiting exits 0', async () => {
    const replica = replication.replicas[0] as PostgresCluster;
    replication.start();
    await replication.kill('replica1');
    await replica.stopServer('fast');
    const waiting = startAgent(replication.configFile, 'replica1');
    const early = startAgent(replication.configFile, 'replica1');
    try {
      for (const agent of [waiting, early])
        await eventually(
          async () => agent.logEvent('replica-unreachable', { node: 'replica1' }) !== undefined,
          'the agent meeting its replica down at start',
        );
      // Told to stop while it waits: it ends cleanly (the old code had exited 3 at the first refusal).
      early.kill('SIGTERM');
      expect(await early.exited, early.output).toBe(0);
      expect(waiting.child.exitCode, waiting.output).toBeNull();
      await replication.primary.query('INSERT INTO t SELECT generate_series(1001, 1100)');
      await replica.startServer();
      await eventually(async () => waiting.logEvent('agent-active') !== undefined, 'agent active');
      await replication.converged();
      await expectIdentical(replication.primary, replication.replicas, ['t']);
    } finally {
      waiting.kill('SIGTERM');
      expect(await waiting.exited, waiting.output).toBe(0);
    }
  });
});

describe('the bus down as lockstep starts', () => {
  it('the publisher and an agent started with every NATS node down wait for it, then replicate', async () => {
    await replication.nats.killAll();
    try {
      replication.start();
      const publisher = replication.coordinator;
      const agent = replication.applier('replica1');
      for (const [name, p] of [
        ['publisher', publisher],
        ['agent', agent],
      ] as const)
        await eventually(
          async () => p.logEvent('bus-unavailable', { node: 'bus' }) !== undefined,
          `the ${name} meeting the bus down at start`,
        );
      expect(publisher.child.exitCode, publisher.output).toBeNull();
      expect(agent.child.exitCode, agent.output).toBeNull();
    } finally {
      await replication.nats.restartAll();
    }
    await replication.primary.query('INSERT INTO t SELECT generate_series(2001, 2100)');
    await replication.converged();
    await expectIdentical(replication.primary, replication.replicas, ['t']);
  });
});
