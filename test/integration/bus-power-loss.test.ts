import { describe, expect, it } from 'vitest';
import { compareLsn } from '../../plugin/protocol/lsn.js';
import { loseStreamTail } from '../support/bus-stream-loss.js';
import { appliedVersion, eventually, rowCount } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { readBusMessages } from '../support/nats-packets.js';
import {
  appliedPosition,
  STREAM,
  stopped,
  usePowerLossTarget,
} from '../support/power-loss-target.js';
import { slotConfirmedLsn } from '../support/retained-wal.js';

// A power loss of every NATS node inside `serverSyncInterval` can bring the stream back empty:
// nothing in it was on disk. The primary kept the WAL of every packet since the slot's confirmed
// point for that case; the publisher must publish those packets again, with the versions they had.
const target = usePowerLossTarget();
const { nats, clusters, replica, recordedHead } = target;
let nextId = 1;

async function insert(transactions: number): Promise<void> {
  for (let i = 0; i < transactions; i++)
    await clusters.primary.query(`INSERT INTO t VALUES (${nextId++})`);
}

describe('lockstep run with bus, after a power loss of the NATS nodes emptied the stream', () => {
  it('publishes again every packet since the slot confirmed point, with its version: an agent behind catches up', async () => {
    const started = await slotConfirmedLsn(clusters.primary);
    let publisher = new LockstepProcess(['run', '--config', target.configFile]);
    let ahead = startAgent(target.configFile, 'replica1');
    let behind = startAgent(target.configFile, 'replica2');
    try {
      await insert(3);
      await eventually(async () => (await rowCount(replica(1), 't')) === 3, 'replica2 at id 3');
      await stopped(behind);
      await insert(5);
      await eventually(async () => (await rowCount(replica(0), 't')) === 8, 'replica1 at id 8');
      await eventually(
        async () => (await recordedHead()).version >= (await appliedVersion(replica(0))),
        'the head recorded',
      );
      const head = await recordedHead();
      // Acknowledged, recorded as the head, yet the slot is not confirmed past any of it.
      expect(compareLsn(await slotConfirmedLsn(clusters.primary), started)).toBe(0);
      expect(head.version).toBeGreaterThan(0);
      await stopped(publisher);
      await stopped(ahead);
      await loseStreamTail(nats.cluster.url, STREAM, 0);

      publisher = new LockstepProcess(['run', '--config', target.configFile]);
      await insert(1);
      ahead = startAgent(target.configFile, 'replica1');
      behind = startAgent(target.configFile, 'replica2');
      for (const node of [replica(0), replica(1)])
        await eventually(async () => (await rowCount(node, 't')) === 9, `${node.name} at id 9`);
      const ids = await replica(1).query<{ id: number }>('SELECT id FROM t ORDER BY id');
      expect(ids.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // Both replicas stand where the primary's numbering does: the same version at the same commit.
      await eventually(async () => {
        const at = await recordedHead();
        return at.version > head.version && at.version === (await appliedVersion(replica(1)));
      }, 'the head recorded at id 9');
      // The last packet on the bus, as the publisher numbered it from the primary's WAL.
      const last = (await readBusMessages(nats.cluster.url, STREAM)).at(-1);
      const final = { version: last?.position.version, lsn: last?.part.header.lsn };
      expect(final.version).toBe((await recordedHead()).version);
      expect(await appliedPosition(replica(0))).toEqual(final);
      expect(await appliedPosition(replica(1))).toEqual(final);
    } finally {
      await stopped(publisher);
      await stopped(ahead);
      await stopped(behind);
    }
  });
});
