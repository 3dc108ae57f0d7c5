import { describe, expect, it } from 'vitest';
import { compareLsn } from '../../plugin/protocol/lsn.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { lastPacketInserting } from '../support/nats-packets.js';
import { slotConfirmedLsn } from '../support/retained-wal.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();
// As nats-server 2.9 runs, with a shorter interval: an acknowledged message may wait this long for its fsync.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE synced (id int PRIMARY KEY)',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3, serverSyncInterval: '8s' };
    },
  },
});

describe('lockstep run with bus and bus.serverSyncInterval', () => {
  it('confirms the slot past a packet only once the servers had time to sync it, also across a stop', async () => {
    const slotConfirmed = () => slotConfirmedLsn(clusters.primary);
    let publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query('INSERT INTO synced VALUES (1)');
      const packet = await lastPacketInserting(nats.cluster.url, 'LOCKSTEP_LOCKSTEP', 1);
      // JetStream acknowledged it (it is on the bus); stopped now, nothing may confirm it later.
      publisher.kill('SIGTERM');
      expect(await publisher.exited).toBe(0);
      // The slot is confirmed to one past a packet's LSN once it holds it: still at or before it.
      expect(compareLsn(await slotConfirmed(), packet.lsn)).toBeLessThanOrEqual(0);

      // Started again with nothing more to publish: the slot moves past the packet, an interval later.
      publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(
        async () => compareLsn(await slotConfirmed(), packet.lsn) > 0,
        'the slot confirmed past the packet',
      );
      expect(publisher.logEvent('bus-unavailable')).toBeUndefined();
    } finally {
      publisher.kill('SIGTERM');
      await publisher.exited;
    }
  });
});
