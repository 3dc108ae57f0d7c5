import { describe, expect, it } from 'vitest';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import type { Change } from '../../plugin/protocol/index.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { memoryPacketLog } from '../support/memory-packet-log.js';

/** Whole one-change packets 1, 2, … at sequences 1, 2, …: `s` signed by this publisher's key, `u` not. */
function bus(signatures: string) {
  const stored = [...signatures].map(
    (mark, i): StoredPart => ({
      sequence: i + 1,
      position: { version: i + 1, part: 0, changes: 1, final: 'one' },
      signed: mark === 's',
      part: {
        header: { version: i + 1, lsn: lsnOf(i + 1), xid: i + 1, commitTime: '2026-01-01' },
        index: 0,
        changes: [{} as Change],
        final: { phase: 'one' },
      },
    }),
  );
  return memoryPacketLog(stored);
}

const lsnOf = (version: number) => `0/${(version * 16).toString(16).toUpperCase()}` as Lsn;
const head = (version: number) => async () => ({ version, lsn: lsnOf(version) });
const slot = (lsn: string) => async () => lsn as Lsn;

describe('a message that follows the chain but is not signed', () => {
  it('is removed at the end of the bus, not resumed from', async () => {
    // Any client allowed on the subject can append packet 3 as it would follow ours.
    const log = bus('ssu');
    const plan = await busResume(log, head(2), slot('0/11'));
    expect(plan).toMatchObject({
      resume: { version: 2, lsn: '0/20' },
      cursor: null,
      lastSequence: 3,
      repaired: { from: 3, to: 3, unsigned: true, found: { version: 3 } },
    });
    expect(log.removed).toEqual([3]);
  });

  it('is removed with ours stored behind it', async () => {
    const log = bus('ssuss');
    const plan = await busResume(log, head(5), slot('0/11'));
    expect(plan).toMatchObject({
      resume: { version: 2, lsn: '0/20' },
      repaired: { from: 3, to: 5, unsigned: true },
    });
    expect(log.removed).toEqual([5, 4, 3]);
  });
});

describe('the older lockstep’s unsigned packets, after an upgrade to signing', () => {
  it('stay where the slot vouches for them', async () => {
    const log = bus('uuuss');
    const plan = await busResume(log, head(5), slot('0/31'));
    expect(plan.resume).toEqual({ version: 5, lsn: '0/50' });
    expect(plan).not.toHaveProperty('repaired');
    expect(log.removed).toEqual([]);
  });

  it('are removed above the slot’s point, to be re-derived signed from the slot', async () => {
    // Published by the older lockstep, acknowledged, the slot not confirmed past packet 2 yet:
    // the slot still holds their WAL, so publishing resumes after 2 and nothing is lost.
    const log = bus('uuuuu');
    const plan = await busResume(log, head(5), slot('0/21'));
    expect(plan).toMatchObject({
      resume: { version: 2, lsn: '0/20' },
      repaired: { from: 3, to: 5, unsigned: true },
    });
    expect(log.removed).toEqual([5, 4, 3]);
  });
});
