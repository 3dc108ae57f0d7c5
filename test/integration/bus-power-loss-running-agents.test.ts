import { describe, expect, it } from 'vitest';
import { lastSequenceThrough, loseStreamTail } from '../support/bus-stream-loss.js';
import { appliedVersion, eventually, rowCount } from '../support/compare-nodes.js';
import { lockTable } from '../support/frozen-replica.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { STREAM, usePowerLossTarget } from '../support/power-loss-target.js';

// A power loss of every NATS node can bring the stream back empty or without its tail, its
// sequences going on from what is left. Agents that kept running sit past those sequences: they
// must read on from their replica's version, apply nothing twice, and never wait for ever.
const target = usePowerLossTarget();
const { nats, clusters, replica, recordedHead } = target;
let nextId = 1;

/**
 * Inserts one row per transaction, each applied on replica1 before the next: one message per
 * packet. Published again after the loss, they share messages: the sequences no longer match.
 */
async function insert(transactions: number): Promise<void> {
  for (let i = 0; i < transactions; i++) {
    const id = nextId++;
    await clusters.primary.query(`INSERT INTO t VALUES (${id})`);
    await eventually(async () => (await rowCount(replica(0), 't')) === id, `replica1 at id ${id}`);
  }
}

async function stopped(process: LockstepProcess): Promise<void> {
  process.kill('SIGTERM');
  await process.exited;
}

/** Both replicas hold every row of the primary, once, and one position row at the primary's head. */
async function expectCaughtUp(agents: readonly LockstepProcess[]): Promise<void> {
  const rows = nextId - 1;
  for (const node of [replica(0), replica(1)])
    await eventually(
      async () => (await rowCount(node, 't')) === rows,
      `${node.name} at id ${rows}`,
      90_000,
    );
  const ids = Array.from({ length: rows }, (_, i) => i + 1);
  for (const node of [replica(0), replica(1)]) {
    const found = await node.query<{ id: number }>('SELECT id FROM t ORDER BY id');
    expect(found.map((r) => r.id)).toEqual(ids);
    expect(await rowCount(node, 'lockstep.applied')).toBe(1);
  }
  await eventually(
    async () => (await recordedHead()).version === (await appliedVersion(replica(0))),
    'the head recorded',
  );
  expect(await appliedVersion(replica(1))).toBe((await recordedHead()).version);
  for (const agent of agents) expect(agent.child.exitCode).toBeNull();
}

describe('a power loss of the NATS nodes while the agents keep running', () => {
  it('an emptied stream: both agents go on from their replica version once it is made again', async () => {
    let publisher = new LockstepProcess(['run', '--config', target.configFile]);
    const agents = [
      startAgent(target.configFile, 'replica1'),
      startAgent(target.configFile, 'replica2'),
    ];
    try {
      await insert(8);
      for (const node of [replica(0), replica(1)])
        await eventually(async () => (await rowCount(node, 't')) === 8, `${node.name} at id 8`);
      await stopped(publisher);
      await loseStreamTail(nats.cluster.url, STREAM, 0);
      publisher = new LockstepProcess(['run', '--config', target.configFile]);
      await eventually(async () => !!publisher.logEvent('bus-publishing'), 'publishing again');
      await insert(1);
      await expectCaughtUp(agents);
    } finally {
      await stopped(publisher);
      for (const agent of agents) await stopped(agent);
    }
  });

  it('a lost tail: the agent ahead of it skips what is published again, the one behind applies it', async () => {
    let publisher = new LockstepProcess(['run', '--config', target.configFile]);
    const agents = [
      startAgent(target.configFile, 'replica1'),
      startAgent(target.configFile, 'replica2'),
    ];
    let release: () => Promise<void> = async () => undefined;
    try {
      await insert(3);
      for (const node of [replica(0), replica(1)])
        await eventually(
          async () => (await rowCount(node, 't')) === nextId - 1,
          `${node.name} caught up`,
        );
      const behind = await appliedVersion(replica(1));
      // replica2's agent waits on the lock: it stays behind while it runs.
      release = await lockTable(replica(1), 't');
      await insert(5);
      await eventually(
        async () => (await rowCount(replica(0), 't')) === nextId - 1,
        'replica1 ahead',
      );
      await eventually(
        async () => (await recordedHead()).version === (await appliedVersion(replica(0))),
        'the head recorded',
      );
      const keep = await lastSequenceThrough(nats.cluster.url, STREAM, behind + 2);
      await stopped(publisher);
      await loseStreamTail(nats.cluster.url, STREAM, keep);
      publisher = new LockstepProcess(['run', '--config', target.configFile]);
      await eventually(async () => !!publisher.logEvent('bus-publishing'), 'publishing again');
      await release();
      await insert(2);
      await expectCaughtUp(agents);
    } finally {
      await release();
      await stopped(publisher);
      for (const agent of agents) await stopped(agent);
    }
  });
});
