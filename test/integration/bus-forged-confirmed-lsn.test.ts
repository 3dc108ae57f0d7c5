import { describe, expect, it } from 'vitest';
import { compareLsn } from '../../plugin/protocol/index.js';
import { eventually } from '../support/compare-nodes.js';
import {
  forgePacket,
  lastPacket,
  publishingFrom,
  publishRows,
  stopCleanly,
  useForgeryTarget,
} from '../support/forged-packets.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { slotConfirmedLsn } from '../support/retained-wal.js';

// The slot vouched for any message whose header LSN it is confirmed past, and a forger picks
// that LSN: a foreign packet naming one was kept unchecked and resumed from. A version past the
// recorded head is not the slot's to vouch for: it must be removed.
const target = useForgeryTarget({ serverSyncInterval: 'always' });
const { clusters } = target;

describe('a foreign packet naming an LSN the slot is confirmed past', () => {
  it('is removed as the publisher resumes', async () => {
    await publishRows(target, 1, 5, async () => {
      const { lsn } = await lastPacket(target);
      await eventually(
        async () => compareLsn(await slotConfirmedLsn(clusters.primary), lsn) > 0,
        'the slot confirmed past the last packet',
      );
    });
    const last = await lastPacket(target);
    const forged = await forgePacket(target, last.version + 1, { lsn: last.lsn });
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      // Before the fix: it resumed from the foreign packet (version last + 1).
      expect(await publishingFrom(publisher)).toBe(last.version);
      expect(publisher.events('bus-tail-repaired')).toMatchObject([
        { from: forged, to: forged, unsigned: true },
      ]);
    } finally {
      await stopCleanly(publisher);
    }
  });
});
