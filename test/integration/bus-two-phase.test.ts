import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { agentSubject, decodeWire, encodeWire } from '../../plugin/protocol/round-subjects.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

const { nats, clusters } = useBusCritical({ voteTimeoutMs: 3_000 });

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const run = (env: NodeJS.ProcessEnv = {}) =>
  new LockstepProcess(['run', '--config', clusters.configFile], env);
const agent = (name: string) =>
  new LockstepProcess(['agent', '--config', clusters.configFile, '--replica', name]);

async function stopped(...processes: Array<LockstepProcess | null>): Promise<void> {
  for (const p of processes) {
    if (!p) continue;
    p.kill('SIGTERM');
    await p.exited;
  }
}

const has = async (node: PostgresCluster, id: number) =>
  (await node.query('SELECT 1 FROM accounts WHERE id = $1', [id])).length === 1;

/** Every node holds the critical row `id` (the round committed everywhere). */
const committedEverywhere = async (id: number) =>
  (await has(replicas()[0], id)) && (await has(replicas()[1], id));

const afterRecovery = async (node: PostgresCluster) =>
  (await node.query("SELECT 1 FROM events WHERE note = 'after recovery'")).length === 1;

async function noGidLeft(): Promise<void> {
  await eventually(
    async () => (await preparedGids([clusters.primary, ...replicas()])).length === 0,
    'no lockstep gid prepared anywhere',
  );
}

let nextId = 1;

/** The log line of an aborted round that `replica` refused, for a reason matching `why`. */
function refusedBy(coordinator: LockstepProcess, replica: string, why: RegExp) {
  return coordinator.logLines().find((l) => {
    const reason = (l.refusals as Record<string, string> | undefined)?.[replica];
    return (
      /^two-phase round aborted/.test(String(l.msg)) && reason !== undefined && why.test(reason)
    );
  });
}

describe('two-phase rounds over the bus', () => {
  it('commits a critical write on every replica, the agents voting over NATS requests', async () => {
    const coordinator = run();
    const agents = [agent('replica1'), agent('replica2')];
    try {
      const id = nextId++;
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      await clusters.primary.query("INSERT INTO events (note) VALUES ('after')");
      await eventually(() => committedEverywhere(id), 'the round to commit on both replicas');
      await eventually(
        async () => (await replicas()[1].query('SELECT 1 FROM events')).length > 0,
        'the packet after the round',
      );
      await expectIdentical(clusters.primary, replicas(), TABLES);
      await noGidLeft();
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('aborts everywhere when one replica refuses, and commits once the conflict is gone', async () => {
    const [r1, r2] = replicas();
    const id = nextId++;
    await r2.query('INSERT INTO accounts VALUES ($1, 99)', [id]);
    const coordinator = run();
    const agents = [agent('replica1'), agent('replica2')];
    try {
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      await eventually(
        async () => refusedBy(coordinator, 'replica2', /duplicate key/) !== undefined,
        'replica2 to refuse the round',
      );
      // Aborted everywhere: the replica that voted yes rolled its PREPARE back.
      expect(await has(r1, id)).toBe(false);
      await noGidLeft();
      await r2.query('DELETE FROM accounts WHERE id = $1', [id]);
      await eventually(() => committedEverywhere(id), 'the retried round to commit');
      await expectIdentical(clusters.primary, replicas(), TABLES);
      await noGidLeft();
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('commits everywhere after the coordinator is killed between the decision and phase two', async () => {
    const agents = [agent('replica1'), agent('replica2')];
    let coordinator: LockstepProcess | null = run({ LOCKSTEP_FAULT: 'after-decision' });
    try {
      const id = nextId++;
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      expect(await coordinator.exited).not.toBe(0);
      expect(await committedEverywhere(id)).toBe(false);
      expect((await preparedGids(replicas())).length).toBe(2);
      coordinator = run();
      await eventually(() => committedEverywhere(id), 'recovery to commit on both replicas');
      // The agents parked for that decision go on with the stream.
      await clusters.primary.query("INSERT INTO events (note) VALUES ('after recovery')");
      await eventually(async () => {
        const seen = await Promise.all(replicas().map((r) => afterRecovery(r)));
        return seen.every(Boolean);
      }, 'the packet after the round on both replicas');
      await noGidLeft();
      await expectIdentical(clusters.primary, replicas(), TABLES);
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('refuses the requests of a deposed coordinator', async () => {
    const coordinator = run();
    const agents = [agent('replica1'), agent('replica2')];
    const nc = await connect({ servers: nats.cluster.url.split(',') });
    try {
      const id = nextId++;
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      await eventually(() => committedEverywhere(id), 'a round (the agents saw the epoch)');
      const reply = await nc.request(
        agentSubject('lockstep', 'replica1', 'rollback'),
        encodeWire({ epoch: 0, gid: 'lockstep_x' }),
        { timeout: 5_000 },
      );
      const answer = decodeWire<{ ok: boolean; deposed?: boolean; error?: string }>(reply.data);
      expect(answer).toMatchObject({ ok: false, deposed: true });
      expect(answer.error).toMatch(/deposed coordinator: epoch 0 is older than \d+/);
      await noGidLeft();
    } finally {
      await nc.close();
      await stopped(...agents, coordinator);
    }
  });

  it('resolves an in-doubt gid by asking the coordinator when its agent comes back after a crash', async () => {
    const agents: Array<LockstepProcess | null> = [agent('replica1'), agent('replica2')];
    let coordinator: LockstepProcess | null = run({ LOCKSTEP_FAULT: 'after-prepare:1' });
    try {
      const id = nextId++;
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      expect(await coordinator.exited).not.toBe(0);
      // At least the replica that voted first holds the round prepared: its agent dies too.
      const index = (await preparedGids([replicas()[0]])).length > 0 ? 0 : 1;
      const name = `replica${index + 1}`;
      expect((await preparedGids([replicas()[index]])).length).toBe(1);
      agents[index]?.kill('SIGKILL');
      await agents[index]?.exited;
      coordinator = run();
      await eventually(async () => coordinator?.logEvent('running') !== undefined, 'coordinator');
      // Still prepared there: nobody answers for that replica until its agent is back.
      expect((await preparedGids([replicas()[index]])).length).toBe(1);
      agents[index] = agent(name);
      await eventually(
        async () =>
          agents[index]?.logEvent('in-doubt-resolved', { decision: 'abort' }) !== undefined,
        'the restarted agent to ask and roll back (presumed abort)',
      );
      expect(coordinator.logEvent('decision-asked', { replica: name })).toBeDefined();
      await eventually(() => committedEverywhere(id), 'the next round to commit everywhere');
      await noGidLeft();
      await expectIdentical(clusters.primary, replicas(), TABLES);
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('aborts a round an agent stopped (SIGSTOP) does not answer, and leaves nothing prepared after SIGCONT', async () => {
    const coordinator = run();
    const agents = [agent('replica1'), agent('replica2')];
    try {
      await eventually(
        async () => agents.every((a) => a.logEvent('agent-active') !== undefined),
        'agents to be active',
      );
      agents[1]?.kill('SIGSTOP');
      const id = nextId++;
      await clusters.primary.query('INSERT INTO accounts VALUES ($1, 10)', [id]);
      // Not a hang: the vote times out, the round aborts, replica1 rolls back; replica2's rollback is retried.
      await eventually(
        async () => /ROLLBACK PREPARED failed: retrying/.test(coordinator.output),
        'the round to abort on the vote timeout',
      );
      expect((await preparedGids([replicas()[0]])).length).toBe(0);
      expect(await has(replicas()[0], id)).toBe(false);
      agents[1]?.kill('SIGCONT');
      await eventually(() => committedEverywhere(id), 'a later round to commit everywhere');
      await noGidLeft();
      await expectIdentical(clusters.primary, replicas(), TABLES);
    } finally {
      agents[1]?.kill('SIGCONT');
      await stopped(...agents, coordinator);
    }
  });
});
