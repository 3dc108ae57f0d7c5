import { jetstream } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { ensurePacketStream } from '../../adapters/nats/packet-stream-setup.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { eventually } from '../support/compare-nodes.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();

const settingsFor = (slot: string, stream?: string) => {
  const settings = busSettings({
    slot,
    bus: { url: nats.cluster.url, stream, replicas: 3, maxAge: '1h', maxBytes: '64MB' },
  });
  if (!settings) throw new Error('no bus');
  return settings;
};

describe('the packet stream on a 3-node JetStream cluster', () => {
  it('is created with the configured limits, then left as it is', async () => {
    const settings = settingsFor('streamtest');
    const nc = await connectBus(settings, 'test');
    try {
      const jsm = await ensurePacketStream(nc, settings);
      const info = await jsm.streams.info('LOCKSTEP_STREAMTEST');
      expect(info.config).toMatchObject({
        subjects: ['lockstep.streamtest.packets'],
        num_replicas: 3,
        max_age: 3600 * 1e9,
        max_bytes: 64 * 1024 ** 2,
        discard: 'old',
        storage: 'file',
      });
      await ensurePacketStream(nc, { ...settings, maxAgeMs: 7_200_000 });
      expect((await jsm.streams.info('LOCKSTEP_STREAMTEST')).config.max_age).toBe(7200 * 1e9);
    } finally {
      await nc.close();
    }
  });

  it('refuses a stream of that name holding other subjects', async () => {
    const settings = settingsFor('other', 'SOMEONE_ELSES');
    const nc = await connectBus(settings, 'test');
    try {
      const jsm = await ensurePacketStream(nc, { ...settings, subject: 'orders.>' });
      expect(jsm).toBeDefined();
      const refused = await ensurePacketStream(nc, settings).catch((e) => e);
      expect(refused).toBeInstanceOf(LockstepError);
      expect(refused.problem).toMatch(/holds subjects \["orders\.>"\], not only lockstep\.other/);
    } finally {
      await nc.close();
    }
  });

  it('keeps accepting messages with one node killed, and has them after it returns', async () => {
    const settings = settingsFor('quorum');
    const nc = await connectBus(settings, 'test');
    try {
      await ensurePacketStream(nc, settings);
      const js = jetstream(nc);
      await js.publish(settings.subject, 'a');
      await nats.cluster.kill(0);
      // The client reconnects and the stream may elect a new leader: the same message (one
      // msgID) is published until acknowledged.
      await eventually(
        () =>
          js.publish(settings.subject, 'b', { msgID: 'b', timeout: 5_000 }).then(
            () => true,
            () => false,
          ),
        'a publish acknowledged with one node down',
      );
      await nats.cluster.restart(0);
      // Right after the restart the answer may come from a node still catching up (nats-server 2.9
      // can elect the returning node before it applied what it missed): once every copy of the
      // stream ends where its leader's does, any node's answer holds both, and never more.
      await nats.cluster.caughtUp({ streams: [settings.stream], restartStuck: true });
      const jsm = await ensurePacketStream(nc, settings);
      const info = await jsm.streams.info(settings.stream);
      expect(info.state.messages).toBe(2);
      expect([info.state.first_seq, info.state.last_seq]).toEqual([1, 2]);
    } finally {
      await nc.close();
    }
  });

  it('names the servers, not the credentials, when it cannot connect', async () => {
    const refused = await connectBus({ servers: ['nats://me:s3cret@127.0.0.1:1'] }, 'test', {
      timeoutMs: 2000,
    }).catch((e) => e);
    expect(refused).toBeInstanceOf(LockstepError);
    expect(refused.message).toContain('nats://127.0.0.1:1');
    expect(refused.message).not.toContain('s3cret');
  });
});
