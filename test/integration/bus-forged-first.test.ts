import { describe, expect, it } from 'vitest';
import { expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  forgePacket,
  insertRows,
  publishingFrom,
  publishRows,
  stopCleanly,
  useForgeryTarget,
} from '../support/forged-packets.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';

// The oldest message on the bus follows nothing, so the walk back never compared it with a
// predecessor and never checked its signature: after a power loss emptied the stream, a lone
// forged packet there was resumed from. It must be removed and the bus resumed as an empty one:
// the slot stays at attach's point (long sync interval), so every packet is re-derived.
const target = useForgeryTarget({ serverSyncInterval: '10m' });
const { clusters } = target;

async function recordedHead(): Promise<number> {
  const [row] = await clusters.primary.query<{ version: string }>(
    "SELECT version::text FROM lockstep.streams WHERE stream = 'lockstep'",
  );
  return Number(row?.version);
}

describe('a foreign packet with nothing before it on the bus', () => {
  it('is removed, the packets below the recorded head re-derived', async () => {
    await publishRows(target, 1, 10);
    const head = await recordedHead();
    const forged = await forgePacket(target, head + 1, { emptied: true });
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const running = [publisher];
    try {
      // Before the fix: it resumed from the foreign packet (version head + 1).
      expect(await publishingFrom(publisher)).toBe(0);
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        { from: forged, to: forged, after: null, unsigned: true },
      ]);
      expect(publisher.events('bus-rederiving')).toMatchObject([{ packets: head, head }]);
      await insertRows(target, 11, 12);
      const agent = startAgent(clusters.configFile, 'replica1');
      running.push(agent);
      await waitForMarker(clusters.primary, clusters.replicas);
      expect(agent.events('bus-signature-invalid')).toEqual([]);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
    } finally {
      await stopCleanly(...running);
    }
  });
});
