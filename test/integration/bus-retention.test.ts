import { beforeAll, describe, expect, it } from 'vitest';
import { compareLsn, lsnFromBigInt, lsnToBigInt } from '../../plugin/protocol/lsn.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { readBusMessages } from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Packets expire after 3 s: an idle primary lets the stream empty itself.
const STREAM = 'LOCKSTEP_LOCKSTEP';
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
});
let configFile = '';
let nextId = 1;

beforeAll(() => {
  const bus = { url: nats.cluster.url, replicas: 3, maxAge: '3s' };
  configFile = writeConfig(clusters.primary, clusters.replicas, {
    bus,
  }).file;
});

async function insert(transactions: number): Promise<void> {
  for (let i = 0; i < transactions; i++)
    await clusters.primary.query(`INSERT INTO t VALUES (${nextId++})`);
}

async function slotConfirmed(): Promise<string> {
  const [row] = await clusters.primary.query<{ lsn: string }>(
    "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'",
  );
  return row?.lsn ?? '0/0';
}

/** Waits until the bus holds a packet carrying the last id inserted; returns its version. */
async function lastIdPublished(): Promise<number> {
  let version = 0;
  await eventually(
    async () => {
      const last = (await readBusMessages(nats.cluster.url, STREAM)).at(-1);
      const row = last?.part.changes.at(-1);
      version = last?.position.version ?? 0;
      return row?.kind === 'insert' && row.row.at(0) === String(nextId - 1);
    },
    `id ${nextId - 1} on the bus`,
  );
  return version;
}

describe('lockstep run with bus, after retention emptied the stream', () => {
  it('keeps publishing, numbering on, once every packet on the bus expired', async () => {
    const sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await eventually(async () => !!sidecar.logEvent('bus-publishing'), 'publishing');
      await insert(3);
      const before = await lastIdPublished();
      const held = (await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.part.header.lsn;
      await eventually(
        async () => compareLsn(await slotConfirmed(), held ?? '0/0') >= 0,
        'slot confirmed',
      );
      // The primary is idle longer than the stream keeps packets.
      await eventually(
        async () => (await readBusMessages(nats.cluster.url, STREAM)).length === 0,
        'stream emptied by max_age',
      );
      await insert(2);
      expect(await lastIdPublished()).toBe(before + 2);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('killed after it confirmed an idle point past the last packet, goes on from the recorded head', async () => {
    let sidecar = new LockstepProcess(['run', '--config', configFile]);
    try {
      await insert(1);
      const before = await lastIdPublished();
      const held = (await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.part.header.lsn;
      // Checkpoints write WAL past the packet: the slot is confirmed to an idle point after it.
      await eventually(async () => {
        await clusters.primary.query('CHECKPOINT');
        return (
          compareLsn(await slotConfirmed(), lsnFromBigInt(lsnToBigInt(held ?? '0/0') + 1n)) > 0
        );
      }, 'slot confirmed past the last packet');
      await eventually(
        async () => (await readBusMessages(nats.cluster.url, STREAM)).length === 0,
        'stream emptied by max_age',
      );
      sidecar.kill('SIGKILL');
      await sidecar.exited;
      sidecar = new LockstepProcess(['run', '--config', configFile]);
      await insert(1);
      expect(await lastIdPublished()).toBe(before + 1);
      expect(sidecar.logEvent('bus-unavailable')).toBeUndefined();
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
