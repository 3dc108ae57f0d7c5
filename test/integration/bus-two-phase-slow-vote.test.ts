import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

/**
 * A round whose voting lasts longer than the recovery interval: the agent
 * that voted first asks the coordinator about its gid while the round is
 * still collecting votes. The answer must not be a presumed abort (the round
 * is alive and will decide); with one, every slow round over the bus aborts.
 * Votes may take a minute; agents look at their prepared gids every half second.
 */
const { clusters } = useBusCritical({ voteTimeoutMs: 60_000, recoveryIntervalMs: 500 });

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const run = () => new LockstepProcess(['run', '--config', clusters.configFile]);
const agent = (name: string) => startAgent(clusters.configFile, name);

const has = async (node: PostgresCluster, id: number) =>
  (await node.query('SELECT 1 FROM accounts WHERE id = $1', [id])).length === 1;

describe('a two-phase round over the bus slower than the recovery interval', () => {
  it('is not aborted by the in-doubt question of the agent that voted first', async () => {
    const coordinator = run();
    const agents = [agent('replica1'), agent('replica2')];
    // replica2's apply hangs (it does not fail) on a lock held here.
    const blocker = new pg.Client({ connectionString: replicas()[1].url });
    await blocker.connect();
    let locked = false;
    try {
      await eventually(
        async () => agents.every((a) => a.logEvent('agent-active') !== undefined),
        'agents to be active',
      );
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
      locked = true;
      await clusters.primary.query('INSERT INTO accounts VALUES (1, 10)');
      // replica1 prepared and, a recovery interval later, asked about its gid.
      await eventually(
        async () =>
          agents[0]?.logEvent('in-doubt') !== undefined ||
          agents[0]?.logEvent('in-doubt-resolved') !== undefined,
        'replica1 to ask about the round in flight',
      );
      await blocker.query('ROLLBACK');
      locked = false;
      await eventually(
        async () => (await has(replicas()[0], 1)) && (await has(replicas()[1], 1)),
        'the round to commit on both replicas',
      );
      expect(agents[0]?.logEvent('in-doubt-resolved', { decision: 'abort' })).toBeUndefined();
      expect(coordinator.logged(/two-phase round aborted/)).toBeUndefined();
      await eventually(
        async () => (await preparedGids([clusters.primary, ...replicas()])).length === 0,
        'no lockstep gid prepared anywhere',
      );
      await expectIdentical(clusters.primary, replicas(), TABLES);
    } finally {
      if (locked) await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      for (const p of [...agents, coordinator]) {
        p.kill('SIGTERM');
        await p.exited;
      }
    }
  });
});
