import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { startAgent, writeConfig } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';

// What runs on both transports (DDL applied, forgeries refused, a replica down): shared/captured-ddl.test.ts.
const CONFIG = {
  twoPhase: { captureDdl: true, voteTimeoutMs: 8_000 },
  tables: ['public.*'],
  retry: { initialMs: 200, maxMs: 2_000 },
};
const replication = useReplication('bus', {
  replicas: 2,
  schema: 'CREATE TABLE events (id int PRIMARY KEY, amount int NOT NULL)',
  config: CONFIG,
});
const replicas = () => replication.replicas as [PostgresCluster, PostgresCluster];

const tableExists = async (node: PostgresCluster, name: string) =>
  (await node.query('SELECT to_regclass($1) IS NOT NULL AS found', [name]))[0]?.found === true;

async function noGidLeft(): Promise<void> {
  await eventually(
    async () => (await preparedGids([replication.primary, ...replicas()])).length === 0,
    'no lockstep gid prepared anywhere',
  );
}

/**
 * Every agent holds its replica's lock and reads the bus: it serves round
 * requests from before it reads, so a round finds it answering (an agent
 * paused between taking its lock and serving would make the round's prepare
 * fail at once with "no responders" instead of timing out).
 */
async function agentsActive(): Promise<void> {
  await eventually(
    async () =>
      ['replica1', 'replica2'].every(
        (name) => replication.applier(name).logEvent('bus-reading') !== undefined,
      ),
    'agents to be active',
  );
}

describe('captured DDL over the bus: agents in the round', () => {
  it('aborts the DDL round an agent stopped (SIGSTOP) does not answer, then commits it everywhere after SIGCONT', async () => {
    const [r1] = replicas();
    replication.start();
    await agentsActive();
    replication.pause('replica2');
    await replication.primary.query('CREATE TABLE stalled (id int PRIMARY KEY)');
    await replication.primary.query('INSERT INTO stalled VALUES (1)');
    // Not a hang: the vote times out and the round aborts, as with a frozen replica in process
    // (its rollback on replica2 is retried until the agent answers again).
    await eventually(
      async () =>
        replication.coordinator.logged(/^ROLLBACK PREPARED failed/, { replica: 'replica2' }) !==
        undefined,
      'the round to abort on the vote timeout',
    );
    await eventually(async () => (await preparedGids([r1])).length === 0, 'r1 rolled back');
    expect(await tableExists(r1, 'stalled')).toBe(false);
    replication.resume('replica2');
    await replication.converged();
    await expectIdentical(replication.primary, replicas(), ['stalled']);
    await noGidLeft();
  });

  it('commits DDL everywhere when an agent is SIGKILLed after voting yes: its replica stays prepared until the agent is back', async () => {
    const [r1, r2] = replicas();
    replication.start();
    await agentsActive();
    // A lock on replica1's position row holds its agent's prepare (bounded by the participant's
    // lock_timeout, the vote timeout): replica2's yes is in before the decision.
    const holder = new pg.Client({ connectionString: r1.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM lockstep.applied FOR UPDATE');
      await replication.primary.query('CREATE TABLE voted (id int PRIMARY KEY, note text)');
      await replication.primary.query("INSERT INTO voted VALUES (1, 'after the DDL')");
      await eventually(
        async () => replication.applier('replica2').logEvent('voted-yes') !== undefined,
        'replica2 to vote yes',
      );
      await replication.kill('replica2');
      expect((await preparedGids([r2])).length).toBe(1);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    // Committed (every vote was yes): replica1 commits, replica2's gid stays prepared, never guessed.
    await eventually(async () => tableExists(r1, 'voted'), 'the round to commit on replica1');
    expect(await tableExists(r2, 'voted')).toBe(false);
    expect((await preparedGids([r2])).length).toBe(1);
    replication.start();
    await replication.converged();
    await expectIdentical(replication.primary, replicas(), ['voted']);
    await noGidLeft();
  });

  it('an agent whose own configuration has captureDdl off halts at captured DDL instead of running it', async () => {
    const [r1, r2] = replicas();
    const off = writeConfig(replication.primary, replicas(), {
      ...CONFIG,
      twoPhase: { ...CONFIG.twoPhase, captureDdl: false },
      bus: { url: replication.busUrl, replicas: 3 },
    });
    replication.start();
    await agentsActive();
    await replication.kill('replica2');
    const agent = startAgent(off.file, 'replica2');
    try {
      await replication.primary.query('CREATE TABLE unasked (id int PRIMARY KEY)');
      await eventually(
        async () =>
          agent.logEvent('replica-stopped', { kind: 'schema', err: /captureDdl is off/ }) !==
          undefined,
        'the agent to refuse the DDL',
      );
      // The round cannot commit anywhere: replica1 rolled its prepare back.
      await eventually(async () => (await preparedGids([r1])).length === 0, 'r1 rolled back');
      expect(await tableExists(r1, 'unasked')).toBe(false);
      expect(await tableExists(r2, 'unasked')).toBe(false);
    } finally {
      agent.kill('SIGTERM');
      await agent.exited;
      off.remove();
    }
    replication.start();
    await replication.converged();
    await expectIdentical(replication.primary, replicas(), ['unasked']);
    await noGidLeft();
  });
});
