import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { agentSubject, decodeWire, encodeWire } from '../../plugin/protocol/round-subjects.js';
import { signedRequest } from '../support/bus-keys.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { criticalSetup, CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import { useReplication } from '../support/lockstep-transport.js';

// Committing everywhere and aborting on a refusal run on both transports: test/integration/shared/two-phase.test.ts.
const replication = useReplication('bus', criticalSetup({ voteTimeoutMs: 3_000 }));
const replicas = () => replication.replicas as [PostgresCluster, PostgresCluster];

const has = async (node: PostgresCluster, id: number) =>
  (await node.query('SELECT 1 FROM accounts WHERE id = $1', [id])).length === 1;

/** Every node holds the critical row `id` (the round committed everywhere). */
const committedEverywhere = async (id: number) =>
  (await has(replicas()[0], id)) && (await has(replicas()[1], id));

const afterRecovery = async (node: PostgresCluster) =>
  (await node.query("SELECT 1 FROM events WHERE note = 'after recovery'")).length === 1;

async function noGidLeft(): Promise<void> {
  await eventually(
    async () => (await preparedGids([replication.primary, ...replicas()])).length === 0,
    'no lockstep gid prepared anywhere',
  );
}

let nextId = 1;

describe('two-phase rounds over the bus', () => {
  it('commits everywhere after the coordinator is killed between the decision and phase two', async () => {
    replication.start({ LOCKSTEP_FAULT: 'after-decision' });
    const id = nextId++;
    await replication.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
    expect(await replication.coordinator.exited).not.toBe(0);
    expect(await committedEverywhere(id)).toBe(false);
    expect((await preparedGids(replicas())).length).toBe(2);
    replication.start();
    await eventually(() => committedEverywhere(id), 'recovery to commit on both replicas');
    // The agents parked for that decision go on with the stream.
    await replication.primary.query("INSERT INTO events (note) VALUES ('after recovery')");
    await eventually(async () => {
      const seen = await Promise.all(replicas().map((r) => afterRecovery(r)));
      return seen.every(Boolean);
    }, 'the packet after the round on both replicas');
    await noGidLeft();
    await expectIdentical(replication.primary, replicas(), TABLES);
  });

  it('refuses the requests of a deposed coordinator', async () => {
    replication.start();
    const nc = await connect({ servers: replication.busUrl.split(',') });
    try {
      const id = nextId++;
      await replication.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      await eventually(() => committedEverywhere(id), 'a round (the agents saw the epoch)');
      // Signed: only the epoch is old.
      const subject = agentSubject('lockstep', 'replica1', 'rollback');
      const request = signedRequest(subject, encodeWire({ epoch: 0, gid: 'lockstep_x' }));
      const reply = await nc.request(subject, request.data, {
        timeout: 5_000,
        headers: request.headers,
      });
      const answer = decodeWire<{ ok: boolean; deposed?: boolean; error?: string }>(reply.data);
      expect(answer).toMatchObject({ ok: false, deposed: true });
      expect(answer.error).toMatch(/deposed coordinator: epoch 0 is older than \d+/);
      await noGidLeft();
    } finally {
      await nc.close();
    }
  });

  it('resolves an in-doubt gid by asking the coordinator when its agent comes back after a crash', async () => {
    replication.start({ LOCKSTEP_FAULT: 'after-prepare:1' });
    const id = nextId++;
    await replication.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
    expect(await replication.coordinator.exited).not.toBe(0);
    // At least the replica that voted first holds the round prepared: its agent dies too.
    const index = (await preparedGids([replicas()[0]])).length > 0 ? 0 : 1;
    const name = `replica${index + 1}`;
    expect((await preparedGids([replicas()[index]])).length).toBe(1);
    await replication.kill(name);
    replication.startCoordinator();
    await eventually(
      async () => replication.coordinator.logEvent('running') !== undefined,
      'coordinator',
    );
    // Still prepared there: nobody answers for that replica until its agent is back.
    expect((await preparedGids([replicas()[index]])).length).toBe(1);
    replication.start();
    await eventually(
      async () =>
        replication.applier(name).logEvent('in-doubt-resolved', { decision: 'abort' }) !==
        undefined,
      'the restarted agent to ask and roll back (presumed abort)',
    );
    await replication.coordinator.untilEvent('decision-asked', { replica: name });
    await eventually(() => committedEverywhere(id), 'the next round to commit everywhere');
    await noGidLeft();
    await expectIdentical(replication.primary, replicas(), TABLES);
  });

  it('aborts a round an agent stopped (SIGSTOP) does not answer, and leaves nothing prepared after SIGCONT', async () => {
    replication.start();
    await eventually(
      async () =>
        ['replica1', 'replica2'].every(
          (name) => replication.applier(name).logEvent('agent-active') !== undefined,
        ),
      'agents to be active',
    );
    replication.pause('replica2');
    const id = nextId++;
    await replication.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
    // Not a hang: the vote times out, the round aborts, replica1 rolls back; replica2's rollback is retried.
    await eventually(
      async () => /ROLLBACK PREPARED failed: retrying/.test(replication.coordinator.output),
      'the round to abort on the vote timeout',
    );
    expect((await preparedGids([replicas()[0]])).length).toBe(0);
    expect(await has(replicas()[0], id)).toBe(false);
    replication.resume('replica2');
    await eventually(() => committedEverywhere(id), 'a later round to commit everywhere');
    await noGidLeft();
    await expectIdentical(replication.primary, replicas(), TABLES);
  });
});
