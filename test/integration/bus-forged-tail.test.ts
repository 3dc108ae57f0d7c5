import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BusSigner } from '../../adapters/nats/bus-signing.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { BusPackets, numberedRelation } from '../support/bus-packets.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { readBusMessages } from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Any client allowed on the packet subject can append a packet that follows the chain: the
// publisher must not resume from it (agents refuse it and halt), but remove and re-derive.
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema:
    'CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE marker (id bigserial PRIMARY KEY);',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});
const STREAM = 'LOCKSTEP_LOCKSTEP';

async function insert(from: number, to: number): Promise<void> {
  for (let id = from; id <= to; id++)
    await clusters.primary.query(`INSERT INTO t VALUES (${id}, ${id})`);
}

/** Appends packet `version`, encoded as lockstep does, signed with a key that is not lockstep run's. */
async function forge(version: number): Promise<number> {
  const settings = busSettings({
    slot: 'lockstep',
    bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 3, maxAge: '7d', maxBytes: '10GB' },
  });
  if (!settings) throw new Error('no bus');
  const nc = await connectBus({ servers: [nats.cluster.nodeUrl(0)] }, 'test-forger');
  try {
    const other = new BusSigner(generateKeyPairSync('ed25519').privateKey);
    const relation = await numberedRelation(clusters.primary);
    await new BusPackets(nc, settings, relation, other).publish(version, [9_999]);
  } finally {
    await nc.close();
  }
  return (await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.sequence as number;
}

describe('a foreign packet that follows the chain at the end of the bus', () => {
  it('is removed as the publisher resumes; the agent gets every row', async () => {
    let publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    let agent = startAgent(clusters.configFile, 'replica1');
    try {
      await insert(1, 10);
      await waitForMarker(clusters.primary, clusters.replicas);
      for (const p of [publisher, agent]) {
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
      const next =
        ((await readBusMessages(nats.cluster.url, STREAM)).at(-1)?.part.header.version as number) +
        1;
      const forged = await forge(next);
      await insert(11, 20);
      publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(async () => !!publisher.logEvent('bus-publishing'), 'publishing again');
      // Before the fix: it resumed from the foreign packet (version `next`).
      expect(publisher.logEvent('bus-publishing')).toMatchObject({ version: next - 1 });
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        { from: forged, to: forged, unsigned: true, found: { version: next, part: 0 } },
      ]);
      agent = startAgent(clusters.configFile, 'replica1');
      await waitForMarker(clusters.primary, clusters.replicas);
      expect(agent.events('bus-signature-invalid')).toEqual([]);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      const messages = await readBusMessages(nats.cluster.url, STREAM);
      expect(messages.map((m) => m.sequence)).not.toContain(forged);
    } finally {
      for (const p of [agent, publisher]) {
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  });
});
