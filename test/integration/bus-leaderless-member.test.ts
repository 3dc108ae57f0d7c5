import { describe, expect, it } from 'vitest';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import { BusLeaderBehindError, type PacketLog } from '../../plugin/ports/packet-bus.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { eventually } from '../support/compare-nodes.js';
import { packetMessage } from '../support/nats-packets.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Five servers and a stream of three replicas: JetStream keeps its meta quorum while the stream's
// group has one running member, and nats-server 2.9 then lets that member answer for the stream
// with its own store (what a CI run of agent-bus-paused met, with a replica that no longer voted).
const nats = useNatsCluster({ size: 5 });

/** Appends packets after where the stream ends up to `to`, one at a time. */
async function appendUpTo(log: PacketLog, to: number): Promise<boolean> {
  const end = await log.end();
  const appender = log.appender(end);
  for (let v = end + 1; v <= to; v++) {
    const { body, position } = packetMessage(v);
    await appender.append(body, position);
  }
  return true;
}

describe('the packet stream with one running member and no leader', () => {
  it('gives no end before what JetStream acknowledged, and goes on once a quorum is back', async () => {
    const settings = busSettings({
      slot: 'leaderless',
      bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 3, maxAge: '1h', maxBytes: '64MB' },
    });
    if (!settings) throw new Error('no bus');
    const log = await openPacketLog(settings, 'test');
    const paused: number[] = [];
    try {
      await eventually(() => appendUpTo(log, 5), '1..5 stored');
      const [behind, ...others] = await nats.cluster.streamHosts(settings.stream);
      expect(others).toHaveLength(2);
      // One member misses 6..20 for good (a paused one would read them from its socket once
      // resumed); the other two store them and JetStream acknowledges them.
      await nats.cluster.kill(behind as number);
      await eventually(() => appendUpTo(log, 20), '6..20 stored without one member');
      // That member alone of the stream's group runs; the cluster keeps its meta quorum.
      for (const i of others) {
        nats.cluster.signal(i, 'SIGSTOP');
        paused.push(i);
      }
      nats.cluster.startNode(behind as number);
      const ends: number[] = [];
      let answer: unknown = null;
      await eventually(
        async () => {
          answer = await log.end().catch((error: Error) => error);
          if (typeof answer === 'number') ends.push(answer);
          return answer instanceof BusLeaderBehindError;
        },
        'the running member to answer for the stream',
        120_000,
      );
      // Never an end before what JetStream acknowledged; the step-down is refused without a leader.
      expect(ends.filter((end) => end < 20)).toEqual([]);
      expect(answer).toMatchObject({ end: 5, acknowledged: 20, leader: null });
      expect((answer as BusLeaderBehindError).stepDown).not.toBe('done');
      for (const i of paused.splice(0)) nats.cluster.signal(i, 'SIGCONT');
      // A quorum again: the stream ends where JetStream acknowledged, and goes on after it.
      await eventually(async () => (await log.end()) === 20, 'the end with a quorum', 120_000);
      await eventually(
        async () => (await appendUpTo(log, 22)) && (await log.last())?.position.version === 22,
        '21..22 stored',
        120_000,
      );
    } finally {
      for (const i of paused) nats.cluster.signal(i, 'SIGCONT');
      await log.close();
    }
  }, 400_000);
});
