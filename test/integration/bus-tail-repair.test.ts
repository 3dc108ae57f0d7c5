import { describe, expect, it } from 'vitest';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { expectContiguous, packetMessage, readBusMessages } from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// A deposed publisher's message took the place of one of ours, and our next one was stored behind it
// (appends name only the sequence they follow): the bus holds ..., k-1, Z, k+1, ... without k.
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE marker (id bigserial PRIMARY KEY);',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});
let nextId = 1;

async function insert(transactions: number): Promise<void> {
  for (let i = 0; i < transactions; i++)
    await clusters.primary.query(`INSERT INTO t VALUES (${nextId++})`);
}

/** Stores a deposed publisher's copy of packet 2 at the end of the bus, then our packet `next + 1` behind it. */
async function breakTheChain(): Promise<{ end: number; next: number }> {
  const settings = busSettings({
    slot: 'lockstep',
    bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 3, maxAge: '7d', maxBytes: '10GB' },
  });
  if (!settings) throw new Error('no bus');
  const log = await openPacketLog(settings, 'test-deposed');
  try {
    const end = await log.end();
    const next = ((await log.last())?.position.version ?? 0) + 1;
    const appender = log.appender(end);
    const foreign = packetMessage(2);
    const ours = packetMessage(next + 1);
    expect(await appender.append(foreign.body, foreign.position)).toBe(end + 1);
    expect(await appender.append(ours.body, ours.position)).toBe(end + 2);
    return { end, next };
  } finally {
    await log.close();
  }
}

describe('a deposed publisher’s message in the chain', () => {
  it('is removed with what follows it; the replica ends identical to the primary', async () => {
    let publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = startAgent(clusters.configFile, 'replica1');
    try {
      await insert(20);
      await waitForMarker(clusters.primary, clusters.replicas);
      publisher.kill('SIGTERM');
      expect(await publisher.exited).toBe(0);
      const { end, next } = await breakTheChain();
      // The agent read past the foreign message into ours: a gap, read again from its position.
      await eventually(async () => agent.events('bus-gap').length > 0, 'the agent to see the gap');
      expect(agent.events('bus-gap')[0]).toMatchObject({
        expected: { version: next, index: 0 },
        found: { version: next + 1, index: 0 },
      });
      // Stalled while the publisher is away: status says so (from the agent's report), not only the log.
      await eventually(async () => {
        const r = await lockstep(['status', '--config', clusters.configFile, '--json'], {}, 60_000);
        const replica = (JSON.parse(r.stdout) as LockstepStatus).replicas[0];
        return /the bus holds version \d+ part 0 where version \d+ part 0 belongs/.test(
          replica?.error ?? '',
        );
      }, 'status to name the gap');
      await insert(20);
      publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(async () => !!publisher.logEvent('bus-publishing'), 'publishing again');
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        {
          from: end + 1,
          to: end + 2,
          after: { version: next - 1, final: 'one' },
          found: { version: 2, part: 0 },
        },
      ]);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      // Applying again clears it.
      await eventually(async () => {
        const r = await lockstep(['status', '--config', clusters.configFile, '--json'], {}, 60_000);
        return (JSON.parse(r.stdout) as LockstepStatus).replicas[0]?.error === null;
      }, 'the gap error to clear');
      // The bus holds every packet once, in order, the removed sequences skipped.
      const messages = await readBusMessages(nats.cluster.url, 'LOCKSTEP_LOCKSTEP');
      expect(messages.map((m) => m.sequence)).not.toContain(end + 1);
      expect(expectContiguous(messages, 't')).toEqual(
        Array.from({ length: nextId - 1 }, (_, i) => i + 1),
      );
    } finally {
      for (const p of [agent, publisher]) {
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  });
});
