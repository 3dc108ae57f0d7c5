import { describe, expect, it } from 'vitest';
import { expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  forgePacket,
  insertRows,
  lastPacket,
  publishingFrom,
  publishRows,
  publishUnreadable,
  STREAM,
  stopCleanly,
  useForgeryTarget,
} from '../support/forged-packets.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { readBusMessages } from '../support/nats-packets.js';

// Any client allowed on the packet subject can append a packet that follows the chain: the
// publisher must not resume from it (agents refuse it and halt), but remove and re-derive.
const target = useForgeryTarget();
const { nats, clusters } = target;

describe('a foreign packet that follows the chain at the end of the bus', () => {
  it('is removed as the publisher resumes; the agent gets every row', async () => {
    await publishRows(target, 1, 10);
    const next = (await lastPacket(target)).version + 1;
    const forged = await forgePacket(target, next);
    await insertRows(target, 11, 20);
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const running = [publisher];
    try {
      // Before the fix: it resumed from the foreign packet (version `next`).
      expect(await publishingFrom(publisher)).toBe(next - 1);
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        { from: forged, to: forged, unsigned: true, found: { version: next, part: 0 } },
      ]);
      const agent = startAgent(clusters.configFile, 'replica1');
      running.push(agent);
      await waitForMarker(clusters.primary, clusters.replicas);
      expect(agent.events('bus-signature-invalid')).toEqual([]);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      const messages = await readBusMessages(nats.cluster.url, STREAM);
      expect(messages.map((m) => m.sequence)).not.toContain(forged);
    } finally {
      await stopCleanly(...running);
    }
  });

  it('a message no lockstep wrote (no headers) is removed too; the agent gets every row', async () => {
    // Any client allowed on the subject can store bytes no lockstep wrote.
    const before = await lastPacket(target);
    const junk = await publishUnreadable(target);
    await insertRows(target, 21, 30);
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const running = [publisher];
    try {
      // Before the fix: every resume threw reading it ("no Lockstep-Version… headers"), retried for ever.
      expect(await publishingFrom(publisher)).toBe(before.version);
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        { from: junk, to: junk, after: { version: before.version } },
      ]);
      const agent = startAgent(clusters.configFile, 'replica1');
      running.push(agent);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      const messages = await readBusMessages(nats.cluster.url, STREAM);
      expect(messages.map((m) => m.sequence)).not.toContain(junk);
    } finally {
      await stopCleanly(...running);
    }
  });
});
