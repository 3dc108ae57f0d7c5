import { describe, expect, it } from 'vitest';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import type { Change } from '../../plugin/protocol/index.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { memoryPacketLog, signature } from '../support/memory-packet-log.js';

/** A whole one-change packet stored at `sequence`: `signed` by this publisher's key or not. */
function message(sequence: number, version: number, lsn: Lsn, signed: boolean): StoredPart {
  return {
    sequence,
    position: { version, part: 0, changes: 1, final: 'one' },
    ...signature(sequence, signed),
    part: {
      header: { version, lsn, xid: version, commitTime: '2026-01-01' },
      index: 0,
      changes: [{} as Change],
      final: { phase: 'one' },
    },
  };
}

/** Whole packets `first`, `first` + 1, … at sequences 1, 2, …: `s` signed by this publisher's key, `u` not. */
function bus(signatures: string, first = 1) {
  const versions = [...signatures].map((mark, i) => [first + i, mark === 's'] as const);
  return memoryPacketLog(versions.map(([v, signed], i) => message(i + 1, v, lsnOf(v), signed)));
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

describe('the bus’s oldest message, with nothing before it to follow', () => {
  it('is removed when forged alone on an emptied stream, resuming from the head', async () => {
    // Retention or a power loss emptied the stream after packet 4, the slot confirmed past it;
    // a client allowed on the subject appends "packet 5" there.
    const log = memoryPacketLog([message(5, 5, '9/0' as Lsn, false)]);
    const plan = await busResume(log, head(4), slot('0/41'));
    expect(plan).toMatchObject({
      resume: { version: 4, lsn: '0/40' },
      cursor: null,
      lastSequence: 5,
      repaired: { from: 5, to: 5, after: null, unsigned: true },
    });
    expect(log.removed).toEqual([5]);
  });

  it('is removed with an unsigned tail reaching it, the slot re-deriving them all', async () => {
    // The older lockstep published 5 and 6 on a stream retention emptied, then the upgrade:
    // the slot confirmed past 4 only, so both are re-derived (signed) with their versions.
    const log = bus('uu', 5);
    const plan = await busResume(log, head(6), slot('0/41'), undefined, async () => 2);
    expect(plan).toMatchObject({
      resume: { version: 4, lsn: '0/40' },
      rederived: { packets: 2, head: { version: 6 } },
      repaired: { from: 1, to: 2, after: null, unsigned: true },
    });
    expect(log.removed).toEqual([2, 1]);
  });
});

describe('an unsigned message naming an LSN the slot is confirmed past', () => {
  // Ours 1 and 2, the slot confirmed past 2. A forger copies packet 2's LSN into what follows:
  // the slot cannot vouch for a version the head was never recorded at.
  const ours = () => [message(1, 1, lsnOf(1), true), message(2, 2, lsnOf(2), true)];
  const copied = (version: number) => message(version, version, lsnOf(2), false);

  it('is removed when its version is past the recorded head', async () => {
    const log = memoryPacketLog([...ours(), copied(3)]);
    const plan = await busResume(log, head(2), slot('0/21'));
    expect(plan.resume).toEqual({ version: 2, lsn: '0/20' });
    expect(log.removed).toEqual([3]);
  });

  it('is removed after ours when the bus ends below the head (its tail lost)', async () => {
    // The head recorded at 4, the bus holding 1 and 2 only: version 3 is not past the head, and
    // the forger names an LSN below the slot's point. Unsigned after one of ours, it is not ours.
    const log = memoryPacketLog([...ours(), message(3, 3, '0/20' as Lsn, false)]);
    const plan = await busResume(log, head(4), slot('0/21'));
    expect(plan.resume).toEqual({ version: 2, lsn: '0/20' });
    expect(log.removed).toEqual([3]);
  });

  it('is not where the walk stops, with another such one after it', async () => {
    const log = memoryPacketLog([...ours(), copied(3), copied(4)]);
    const plan = await busResume(log, head(2), slot('0/21'));
    expect(plan.resume).toEqual({ version: 2, lsn: '0/20' });
    expect(log.removed).toEqual([4, 3]);
  });
});
