import { describe, expect, it } from 'vitest';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { PacketLog } from '../../plugin/ports/packet-bus.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { eventually } from '../support/compare-nodes.js';
import { packetMessage } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Every node's copy of the packet stream ends where its leader's does, after nodes hung under appends
// in flight: nats-server 2.9.10 left a caught-up follower refusing every message once the appender
// named its predecessor's message id (followers ended at 64,724 while the leader had 128,316).
const nats = useNatsCluster();
const IN_FLIGHT = 32;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Appends runs of 32 in flight from the subject's end until stopped; a refused run starts over from the end. */
async function appendUntil(log: PacketLog, stopped: () => boolean): Promise<void> {
  let version = 1;
  while (!stopped()) {
    const after = await log.end().catch(() => null);
    if (after === null) {
      await sleep(200);
      continue;
    }
    const appender = log.appender(after);
    const inFlight: Promise<unknown>[] = [];
    let failed = false;
    for (let i = 0; i < 500 && !failed && !stopped(); i++) {
      const { body, position } = packetMessage(version++);
      inFlight.push(
        appender.append(body, position).catch(() => {
          failed = true;
        }),
      );
      if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
    }
    await Promise.all(inFlight);
  }
}

describe('the packet stream under appends in flight while nodes hang', () => {
  it('keeps every node’s copy whole: each ends where the leader’s does', async () => {
    const settings = busSettings({
      slot: 'copies',
      bus: {
        ...busKeyFiles(),
        url: nats.cluster.url,
        replicas: 3,
        maxAge: '1h',
        maxBytes: '256MB',
      },
    });
    if (!settings) throw new Error('no bus');
    const log = await openPacketLog(settings, 'test-appender');
    let stop = false;
    const rounds: number[][] = [];
    try {
      for (let round = 0; round < 5; round++) {
        const appending = appendUntil(log, () => stop);
        // The leader hangs, then a follower, and so on: each catches up after.
        const leader = await nats.cluster.streamLeader(settings.stream);
        const victim = round % 2 === 0 ? leader : (leader + 1) % nats.cluster.size;
        await sleep(1_000);
        nats.cluster.signal(victim, 'SIGSTOP');
        await sleep(7_000);
        nats.cluster.signal(victim, 'SIGCONT');
        await sleep(5_000);
        stop = true;
        await appending;
        stop = false;
        // Where each copy ends once appends stopped: a lagging follower may still be catching up here.
        rounds.push(await nats.cluster.copyEnds(settings.stream));
      }
      // A copy that stopped applying never catches up (2.9.10 keeps refusing every later message), while
      // one that lags does: so after the last round every copy must reach one end, and a real one.
      let ends: number[] = [];
      await eventually(
        async () => {
          ends = await nats.cluster.copyEnds(settings.stream);
          return ends.every((end) => end === ends[0]);
        },
        'every copy at the same end',
        60_000,
      ).catch(() => undefined);
      expect(new Set(ends).size, JSON.stringify({ rounds, ends })).toBe(1);
      expect(ends[0]).toBeGreaterThan(0);
    } finally {
      stop = true;
      for (let i = 0; i < nats.cluster.size; i++) nats.cluster.signal(i, 'SIGCONT');
      await log.close();
    }
  }, 180_000);
});
