import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { NatsPacketReader } from '../../adapters/nats/packet-consumer.js';
import { ensurePacketStream } from '../../adapters/nats/packet-stream-setup.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import type { PacketFeed } from '../../plugin/ports/packet-reader.js';
import { busKeyFiles, testBusVerifier } from '../support/bus-keys.js';
import { BusPackets, numberedRelationWithOid } from '../support/bus-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Above the reader's 8 MB buffer: a user who raised max_payload for large rows gets parts that big.
const MAX_PAYLOAD = 16 * 1024 * 1024;
const nats = useNatsCluster({ maxPayload: MAX_PAYLOAD });

// The reader never looks at the relation: a made-up oid is enough.
const RELATION = numberedRelationWithOid(16_384);

let nc: NatsConnection;
const open: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  nc = await connectBus({ servers: nats.cluster.url.split(',') }, 'test');
});
afterAll(async () => {
  for (const o of open) await o.close().catch(() => undefined);
  await nc?.close();
});

/** A stream of its own for one case, and a publisher and a reader on it. */
async function stream(slot: string) {
  const settings = busSettings({
    slot,
    bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 1, maxAge: '1h', maxBytes: '256MB' },
  }) as BusSettings;
  await ensurePacketStream(nc, settings);
  const jsm = await jetstreamManager(nc);
  const readerConnection = await connectBus(settings, `reader-${slot}`);
  const reader = new NatsPacketReader(readerConnection, settings, { verifier: testBusVerifier() });
  open.push(reader);
  return {
    packets: new BusPackets(nc, settings, RELATION),
    reader,
    /** Deletes the message at `seq`, leaving a gap in the stream's sequences. */
    remove: (seq: number) => jsm.streams.deleteMessage(settings.stream, seq),
    purge: (keep?: number) =>
      jsm.streams.purge(settings.stream, keep === undefined ? undefined : { keep }),
  };
}

/** The version and part index of the feed's next part. */
async function nextOf(feed: PacketFeed): Promise<string> {
  const part = await feed.next();
  return `${part.header.version}/${part.index}`;
}

async function firstOf(reader: NatsPacketReader, version: number): Promise<string> {
  const feed = await reader.readFrom(version, 'replica1');
  try {
    return await nextOf(feed);
  } finally {
    await feed.close();
  }
}

describe('the packet reader finds the first part of a version', () => {
  it('across versions in many parts and deleted messages (sequence gaps)', async () => {
    const { packets, reader, remove } = await stream('gaps');
    // Sequences: v1 = 1; v2 = 2..5; v3 = 6; v4 = 7..9; v5 = 10; v6 = 11..12.
    await packets.publish(1, [1]);
    await packets.publish(2, [2, 3, 4, 5], 'one', 4);
    await packets.publish(3, [6]);
    await packets.publish(4, [7, 8, 9], 'one', 3);
    await packets.publish(5, [10]);
    await packets.publish(6, [11, 12], 'one', 2);
    await remove(3);
    await remove(6);
    await remove(10);
    expect(await firstOf(reader, 1)).toBe('1/0');
    expect(await firstOf(reader, 2)).toBe('2/0');
    expect(await firstOf(reader, 4)).toBe('4/0');
    expect(await firstOf(reader, 6)).toBe('6/0');
    // Not published yet: the feed waits for it.
    const feed = await reader.readFrom(7, 'replica1');
    await packets.publish(7, [13]);
    expect(await nextOf(feed)).toBe('7/0');
    await feed.close();
  });

  it('refuses a head trimmed inside the version it needs, even by one part', async () => {
    const { packets, reader, purge } = await stream('trimmed');
    await packets.publish(1, [1]);
    await packets.publish(2, [2, 3, 4], 'one', 3);
    await packets.publish(3, [5]);
    // Retention took v1 and the first part of v2.
    await purge(3);
    const lost = await reader.readFrom(2, 'replica1').catch((error: unknown) => error);
    expect(lost).toBeInstanceOf(LockstepError);
    expect(lost).toMatchObject({ node: 'replica1', reason: 'retention-lost' });
    expect((lost as LockstepError).problem).toMatch(/packet 2 /);
    expect(await firstOf(reader, 3)).toBe('3/0');
  });

  it('waits on a stream purged entirely, then reads what comes next', async () => {
    const { packets, reader, purge } = await stream('emptied');
    await packets.publish(1, [1]);
    await packets.publish(2, [2]);
    await purge();
    const feed = await reader.readFrom(3, 'replica1');
    await packets.publish(3, [3, 4], 'one', 2);
    expect(await nextOf(feed)).toBe('3/0');
    // Each message's count of its packet's changes (Lockstep-Changes): what agents check it adds up to.
    expect(feed.changesThrough?.()).toBe(1);
    expect(await nextOf(feed)).toBe('3/1');
    expect(feed.changesThrough?.()).toBe(2);
    await feed.close();
  });

  it('reads parts larger than its 8 MB buffer, among small ones, when the servers allow parts that large', async () => {
    const { packets, reader } = await stream('large');
    // About 10 MB in one message (29 bytes a change).
    const large = Array.from({ length: 360_000 }, (_, i) => i);
    // Small packets first: the large one then meets pulls the small ones partly used.
    let version = 0;
    for (let i = 0; i < 300; i++) await packets.publish(++version, [i]);
    await packets.publish(++version, large);
    for (let i = 0; i < 300; i++) await packets.publish(++version, [i]);
    await packets.publish(++version, large);
    await packets.publish(++version, [1]);
    const feed = await reader.readFrom(1, 'replica1');
    // Before the fix each pull asked for at most 8 MB: the server refused the large message to it, and the feed waited for ever.
    for (let v = 1; v <= version; v++) expect(await nextOf(feed)).toBe(`${v}/0`);
    await feed.close();
  }, 60_000);
});
