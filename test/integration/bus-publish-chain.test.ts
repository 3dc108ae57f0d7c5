import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { ensurePacketStream } from '../../adapters/nats/packet-stream-setup.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import {
  BusLeaderBehindError,
  BusRefusedError,
  type PacketAppender,
  type PacketLog,
} from '../../plugin/ports/packet-bus.js';
import { eventually } from '../support/compare-nodes.js';
import { expectContiguous, packetMessage, readBusMessages } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Appends with several in flight, on a 3-node cluster: each is stored only right after the one before.
const nats = useNatsCluster();

const settingsFor = (slot: string) => {
  const settings = busSettings({
    slot,
    bus: { url: nats.cluster.url, replicas: 3, maxAge: '1h', maxBytes: '64MB' },
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

  it('stores nothing of a run after another publisher’s message, not only the next one', async () => {
    const settings = settingsFor('chainforeign');
    const log = await openPacketLog(settings, 'test');
    const other = await connectBus(settings, 'test-other');
    try {
      const appender = log.appender(await log.end());
      const first = packetMessage(1);
      expect(await appender.append(first.body, first.position)).toBe(1);
      // Another publisher read the end and stored its packet 2 there: ours are all refused.
      const theirs = packetMessage(2);
      await jetstream(other).publish(settings.subject, theirs.body, {
        expect: { lastSequence: 1 },
      });
      const ours = [2, 3, 4, 5].map((v) => {
        const { body, position } = packetMessage(v);
        return appender.append(body, position);
      });
      const results = await Promise.allSettled(ours);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toBeInstanceOf(BusRefusedError);
      }
      const info = await (await jetstreamManager(other)).streams.info(settings.stream);
      expect(info.state.last_seq).toBe(2);
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
});
