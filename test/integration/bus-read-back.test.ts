import { describe, expect, it } from 'vitest';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { PacketLog } from '../../plugin/ports/packet-bus.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { packetMessage } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Resuming walks back from the end of the bus a read at a time: it must see what `before` sees.
const nats = useNatsCluster();

/** Sequences from `from` back to the stream's start, one `before` request each. */
async function beforeWalk(log: PacketLog, from: number): Promise<number[]> {
  const seen: number[] = [];
  for (let at = from; ; ) {
    const message = await log.before(at);
    if (!message) return seen;
    seen.push(message.sequence);
    at = message.sequence;
  }
}

/** The same walk, a read back at a time; how many reads it took as well. */
async function readBackWalk(log: PacketLog, from: number) {
  const seen: number[] = [];
  let reads = 0;
  for (let at = from; ; ) {
    const read = await log.readBack(at);
    reads++;
    if (read.length === 0) return { seen, reads };
    seen.push(...read.map((message) => message.sequence));
    at = read[read.length - 1]?.sequence as number;
  }
}

describe('reading the packet subject back', () => {
  it('gives every message before a sequence newest first, stepping over removed spans', async () => {
    const settings = busSettings({
      slot: 'readback',
      bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 3, maxAge: '1h', maxBytes: '64MB' },
    });
    if (!settings) throw new Error('no bus');
    const log = await openPacketLog(settings, 'test');
    try {
      let appender = log.appender(0);
      for (let v = 1; v <= 1_500; v++) {
        const { body, position } = packetMessage(v);
        await appender.append(body, position);
      }
      // A repaired tail: more sequences removed than one read spans, then messages after them.
      for (let seq = 200; seq <= 1_400; seq++) await log.remove(seq);
      await log.remove(10);
      appender = log.appender(await log.end());
      for (let v = 1_501; v <= 1_510; v++) {
        const { body, position } = packetMessage(v);
        await appender.append(body, position);
      }
      const expected = await beforeWalk(log, 1_511);
      expect(expected).toHaveLength(1_510 - 1_201 - 1);
      const { seen, reads } = await readBackWalk(log, 1_511);
      expect(seen).toEqual(expected);
      expect(reads).toBeLessThan(expected.length / 10);
      // From inside the stream (one read: those of its span), and from its first message: nothing before it.
      const inside = (await log.readBack(1_405)).map((m) => m.sequence);
      expect(inside).toEqual([1_404, 1_403, 1_402, 1_401]);
      expect(await log.readBack(1)).toEqual([]);
    } finally {
      await log.close();
    }
  });
});
