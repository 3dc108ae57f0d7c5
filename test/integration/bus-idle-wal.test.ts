import { describe, expect, it } from 'vitest';
import { compareLsn, lsnFromBigInt, lsnToBigInt } from '../../plugin/protocol/lsn.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { lastPacketInserting } from '../support/nats-packets.js';
import { expectRetainedBelow, slotConfirmedLsn, writeNoise } from '../support/retained-wal.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const MB = 1024 * 1024;
const STREAM = 'LOCKSTEP_LOCKSTEP';
const nats = useNatsCluster();
// Only `quiet` is replicated; `noise` (writeNoise) is a busy table of the primary's own.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE quiet (id int PRIMARY KEY)',
  config: {
    tables: ['public.quiet'],
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

/** Waits until the bus's last packet carries `id`; returns its header. */
const onTheBus = (id: number) => lastPacketInserting(nats.cluster.url, STREAM, id);
const slotConfirmed = () => slotConfirmedLsn(clusters.primary);

describe('lockstep run with bus over a primary that writes only tables it does not replicate', () => {
  it('confirms the idle point: the slot keeps little WAL, and a restart goes on from there', async () => {
    const { primary } = clusters;
    let publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await primary.query('INSERT INTO quiet VALUES (1)');
      const first = await onTheBus(1);
      await writeNoise(primary, 32 * MB);
      await expectRetainedBelow(primary, 2 * MB);
      // Past the last packet: what a restart must accept.
      const after = lsnFromBigInt(lsnToBigInt(first.lsn) + 1n);
      expect(compareLsn(await slotConfirmed(), after)).toBeGreaterThan(0);

      publisher.kill('SIGTERM');
      expect(await publisher.exited).toBe(0);
      publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
      await primary.query('INSERT INTO quiet VALUES (2)');
      expect((await onTheBus(2)).version).toBe(first.version + 1);
      expect(publisher.logEvent('bus-unavailable')).toBeUndefined();
      expect(publisher.logEvent('bus-refused')).toBeUndefined();
    } finally {
      publisher.kill('SIGTERM');
      await publisher.exited;
    }
  });
});
