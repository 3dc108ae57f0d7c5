import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { NatsPacketReader } from '../../adapters/nats/packet-consumer.js';
import { ensurePacketStream } from '../../adapters/nats/packet-stream-setup.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import {
  BusLeaderBehindError,
  BusRefusedError,
  type PacketAppender,
  type PacketLog,
  type StoredPart,
} from '../../plugin/ports/packet-bus.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { busKeyFiles, testBusVerifier } from '../support/bus-keys.js';
import { eventually } from '../support/compare-nodes.js';
import { expectContiguous, packetMessage, readBusMessages } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Appends with several in flight, on a 3-node cluster: each is stored only right after the one before.
const nats = useNatsCluster();

const settingsFor = (slot: string) => {
  const settings = busSettings({
    slot,
    bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 3, maxAge: '1h', maxBytes: '64MB' },
  });
  if (!settings) throw new Error('no bus');
  return settings;
};

/** Sends packets `from..to` on `appender`, none waiting for another; their outcomes. */
function sendRun(appender: PacketAppender, from: number, to: number) {
  const sent = [];
  for (let v = from; v <= to; v++) {
    const { body, position } = packetMessage(v);
    sent.push(appender.append(body, position));
  }
  return Promise.allSettled(sent);
}

/** Appends packets `from..to` on one appender from the stream's end. */
async function appendRun(log: PacketLog, from: number, to: number) {
  return sendRun(log.appender(await log.end()), from, to);
}

describe('appends in flight on the packet subject', () => {
  it('stores a run sent without waiting, each message right after the one before', async () => {
    const settings = settingsFor('chainrun');
    const log = await openPacketLog(settings, 'test');
    try {
      const results = await appendRun(log, 1, 300);
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toEqual(
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      expect(
        expectContiguous(await readBusMessages(nats.cluster.url, settings.stream), 't'),
      ).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    } finally {
      await log.close();
    }
  });

  it('names in each message the digest of the one before, across a new appender', async () => {
    const log = await openPacketLog(settingsFor('chaindigest'), 'test');
    try {
      await appendRun(log, 1, 20);
      // A restart: the first message of the new run chains to the last one kept.
      const kept = await log.last();
      await sendRun(log.appender(await log.end(), kept), 21, 22);
      const read = [(await log.last()) as StoredPart, ...(await log.readBack(22))];
      expect(read.map((m) => m.sequence)).toEqual(Array.from({ length: 22 }, (_, i) => 22 - i));
      expect(read.every((m) => m.signed())).toBe(true);
      read.slice(0, -1).forEach((m, i) => {
        expect(m.chained).toBe(read[i + 1]?.digest());
      });
      expect(read.at(-1)?.chained).toBeUndefined();
    } finally {
      await log.close();
    }
  });

  it('stores a run after another publisher’s message but its first; resuming removes them', async () => {
    const settings = settingsFor('chainforeign');
    const log = await openPacketLog(settings, 'test');
    const other = await openPacketLog(settings, 'test-other');
    try {
      const appender = log.appender(await log.end());
      const first = packetMessage(1);
      expect(await appender.append(first.body, first.position)).toBe(1);
      // A deposed publisher read the end and stored its copy of packet 1 there: our 2 is refused, the
      // rest (naming only the sequence they follow) are stored behind it.
      const theirs = packetMessage(1);
      expect(await other.appender(1).append(theirs.body, theirs.position)).toBe(2);
      const ours = await sendRun(appender, 2, 5);
      expect(ours[0]?.status === 'rejected' && ours[0].reason).toBeInstanceOf(BusRefusedError);
      expect(ours.slice(1).map((r) => r.status === 'fulfilled' && r.value)).toEqual([3, 4, 5]);
      // Resuming with packet 1 confirmed: theirs and ours behind it are removed.
      const plan = await busResume(
        log,
        async () => null,
        async () => '0/11' as Lsn,
      );
      expect(plan).toMatchObject({
        resume: { version: 1, lsn: '0/10' },
        lastSequence: 5,
        repaired: { from: 2, to: 5, found: { version: 1, part: 0 } },
      });
      expect((await log.last())?.sequence).toBe(1);
      expect(await log.end()).toBe(5);
    } finally {
      await other.close();
      await log.close();
    }
  });

  it('with the stream leader killed mid-run, holds a prefix of the run once, and a new run goes on after it', async () => {
    const settings = settingsFor('chainleader');
    const log = await openPacketLog(settings, 'test');
    const nc = await connectBus(settings, 'test-info');
    let killed = -1;
    try {
      await appendRun(log, 1, 10);
      const leader = (await (await jetstreamManager(nc)).streams.info(settings.stream)).cluster
        ?.leader;
      killed = Number(leader?.slice(1)) - 1;
      const run = sendRun(log.appender(10), 11, 400);
      await nats.cluster.kill(killed);
      await run;
      // New runs from where the subject really ends (the cluster may still elect): 1..400 once, in order.
      await eventually(async () => {
        const last = (await log.last())?.position.version ?? 0;
        if (last < 400) await appendRun(log, last + 1, 400);
        return last === 400;
      }, 'the rest of the run stored');
      expect(
        expectContiguous(await readBusMessages(nats.cluster.url, settings.stream), 't'),
      ).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    } finally {
      if (killed >= 0) await nats.cluster.restart(killed);
      await nc.close();
      await log.close();
    }
  });

  it('takes no end from a leader behind what it acknowledged, and asks that leader to step down', async () => {
    const settings = settingsFor('chainbehind');
    const log = await openPacketLog(settings, 'test');
    const nc = await connectBus(settings, 'test-admin');
    try {
      await appendRun(log, 1, 5);
      // A leader whose replica lacks acknowledged messages (on nats-server 2.9, one that stopped
      // applying after a pause) says the stream ends early; an emptied stream says the same.
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(settings.stream);
      await ensurePacketStream(nc, settings);
      const leader = async () => (await jsm.streams.info(settings.stream)).cluster?.leader;
      const before = await leader();
      const behind = await log.end().catch((e) => e);
      expect(behind).toBeInstanceOf(BusLeaderBehindError);
      expect(behind).toMatchObject({ end: 0, acknowledged: 5, leader: before, stepDown: 'done' });
      await eventually(async () => {
        const now = await leader();
        return now !== undefined && now !== before;
      }, 'another stream leader');
    } finally {
      await nc.close();
      await log.close();
    }
  });

  it('after a removed tail: the end stays, the last message and a reader skip what was removed', async () => {
    const settings = settingsFor('chainremoved');
    const log = await openPacketLog(settings, 'test');
    const nc = await connectBus(settings, 'test-reader');
    try {
      await appendRun(log, 1, 5);
      for (const sequence of [5, 4]) await log.remove(sequence);
      // JetStream keeps the last sequence: appends still follow it.
      expect(await log.end()).toBe(5);
      expect((await log.last())?.sequence).toBe(3);
      expect((await log.before(5))?.sequence).toBe(3);
      // A reader of packet 4, before it is stored again and after, starts at the next one stored.
      const reader = new NatsPacketReader(nc, settings, { verifier: testBusVerifier() });
      const feed = await reader.readFrom(4, 'replica1');
      const run = await sendRun(log.appender(5), 4, 5);
      expect(run.map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toEqual([6, 7]);
      expect((await feed.next()).header.version).toBe(4);
      await feed.close();
      const again = await reader.readFrom(5, 'replica1');
      expect((await again.next()).header.version).toBe(5);
      await again.close();
    } finally {
      await nc.close();
      await log.close();
    }
  });

  it('names the fix when the stream denies removing a broken tail', async () => {
    const settings = settingsFor('chaindenied');
    const nc = await connectBus(settings, 'test-setup');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: settings.stream,
      subjects: [settings.subject],
      num_replicas: 3,
      deny_delete: true,
    });
    await nc.close();
    const log = await openPacketLog(settings, 'test');
    try {
      await appendRun(log, 1, 2);
      const refused = await log.remove(2).catch((error: unknown) => error);
      expect(refused).toMatchObject({ node: 'bus' });
      expect((refused as Error).message).toMatch(/cannot remove message 2 of stream/);
      expect((refused as { fix: string }).fix).toMatch(/deny_delete false/);
      expect((await log.last())?.sequence).toBe(2);
    } finally {
      await log.close();
    }
  });
});
