import { describe, expect, it } from 'vitest';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import type { Change } from '../../plugin/protocol/index.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import type { Phase } from '../../plugin/protocol/packet.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { PUBLISH_LIMITS } from '../../plugin/sidecar/publish-window.js';
import { memoryPacketLog, signature } from '../support/memory-packet-log.js';

/**
 * A stored message: [version, part, changes so far, final, its sequence when
 * not the next one, first version when several, changes it holds when not
 * the count's step from its packet's previous part in the list].
 */
type Message = [number, number, number, Phase | null, number?, number?, number?];

/** A bus holding messages at sequences `from`, `from + 1`, … (a message naming its own moves the count on). */
function bus(from: number, messages: Message[]) {
  let next = from;
  const stored = messages.map(
    ([version, part, changes, final, at, first, holds], i): StoredPart => {
      const lsn = `0/${(version * 16).toString(16).toUpperCase()}` as Lsn;
      const header = { version, lsn, xid: version, commitTime: '2026-01-01T00:00:00.000000Z' };
      next = at ?? next;
      const before = messages.slice(0, i).findLast(([v, p]) => v === version && p === part - 1);
      const held = holds ?? changes - (part > 0 ? (before?.[2] ?? 0) : 0);
      const sequence = next++;
      return {
        sequence,
        position: { version, part, changes, final, ...(first ? { first } : {}) },
        ...signature(sequence),
        part: {
          header,
          index: part,
          changes: Array.from({ length: Math.max(0, held) }, () => ({}) as Change),
          final: final ? { phase: final } : null,
        },
      };
    },
  );
  return memoryPacketLog(stored);
}

const start = async () => ({ version: 0, lsn: '0/8' as Lsn });
const slot = (lsn: string | null) => async () => lsn as Lsn | null;

describe('where publishing resumes', () => {
  it('after a whole packet, and inside one split across messages', async () => {
    const whole = bus(1, [
      [1, 0, 2, 'one'],
      [2, 0, 3, null],
      [2, 1, 5, 'one'],
    ]);
    expect(await busResume(whole, start, slot('0/21'))).toEqual({
      resume: { version: 2, lsn: '0/20' },
      cursor: null,
      lastSequence: 3,
      kept: expect.objectContaining({ sequence: 3 }),
    });
    const inside = bus(1, [
      [1, 0, 2, 'one'],
      [2, 0, 3, null],
      [2, 1, 5, null],
    ]);
    expect(await busResume(inside, start, slot('0/11'))).toEqual({
      resume: { version: 1, lsn: '0/10' },
      cursor: { version: 2, nextPart: 2, seen: 0, stored: 5 },
      lastSequence: 3,
      kept: expect.objectContaining({ sequence: 3 }),
    });
    // The first packet in part: it resumes from attach's point.
    const first = bus(1, [[1, 0, 4, null]]);
    expect((await busResume(first, start, slot('0/9'))).resume).toEqual(await start());
  });

  it('fails closed when retention dropped the start of the last packet, or the slot is ahead', async () => {
    const dropped = bus(7, [[9, 1, 6, null]]);
    await expect(busResume(dropped, start, slot(null))).rejects.toThrow(/ends inside packet 9/);
    const behind = bus(4, [[3, 0, 1, 'one']]);
    await expect(busResume(behind, start, slot('0/40'))).rejects.toThrow(/packets in between/);
  });

  it('inside a packet whose predecessor retention took: from the head recorded for it', async () => {
    // The bus expired while idle (sequences 1..9 gone), then packet 5 was stored in part.
    const inside = bus(10, [
      [5, 0, 3, null],
      [5, 1, 6, null],
    ]);
    const head = async () => ({ version: 4, lsn: '0/4F' as Lsn });
    expect(await busResume(inside, head, slot('0/50'))).toEqual({
      resume: { version: 4, lsn: '0/4F' },
      cursor: { version: 5, nextPart: 2, seen: 0, stored: 6 },
      lastSequence: 11,
      kept: expect.objectContaining({ sequence: 11 }),
    });
    // A head of another packet says nothing of where packet 4 ended.
    const older = async () => ({ version: 3, lsn: '0/3F' as Lsn });
    await expect(busResume(inside, older, slot(null))).rejects.toThrow(/ends inside packet 5/);
  });

  it('from the idle point recorded with the last packet, when the slot is confirmed to it', async () => {
    // Packet 3 committed at 0/30; the head says nothing replicated came until 0/7F.
    const head = async () => ({ version: 3, lsn: '0/7F' as Lsn });
    const whole = bus(1, [[3, 0, 1, 'one']]);
    expect((await busResume(whole, head, slot('0/80'))).resume).toEqual(await head());
    // Packet 4 stored in part after the idle point: re-derived from it.
    const inside = bus(1, [
      [3, 0, 1, 'one'],
      [4, 0, 2, null],
    ]);
    const plan = await busResume(inside, head, slot('0/80'));
    expect(plan.resume).toEqual(await head());
    expect(plan.cursor).toMatchObject({ version: 4, nextPart: 1 });
    // A head of an earlier packet, or before the stored one, moves nothing.
    const older = async () => ({ version: 2, lsn: '0/7F' as Lsn });
    await expect(busResume(whole, older, slot('0/80'))).rejects.toThrow(/packets in between/);
    expect((await busResume(whole, start, slot('0/31'))).resume).toEqual({
      version: 3,
      lsn: '0/30',
    });
  });

  it('inside a change sent in fragments: at the byte after the last one stored', async () => {
    const lsn = '0/20' as Lsn;
    const header = { version: 2, lsn, xid: 2, commitTime: '2026-01-01T00:00:00.000000Z' };
    // As the publisher stores them: the change counts once its last fragment is stored.
    const fragment = (sequence: number, part: number, offset: number, length: number) => ({
      sequence,
      position: { version: 2, part, changes: offset + length === 1_000 ? 1 : 0, final: null },
      ...signature(sequence),
      part: { header, index: part, final: null, offset, total: 1_000, bytes: Buffer.alloc(length) },
    });
    const first = (await bus(1, [[1, 0, 2, 'one']]).at(1)) as StoredPart;
    const stored = [first, fragment(2, 0, 0, 100), fragment(3, 1, 100, 100)];
    const inside = memoryPacketLog(stored);
    expect((await busResume(inside, start, slot('0/11'))).cursor).toEqual({
      version: 2,
      nextPart: 2,
      seen: 0,
      stored: 0,
      partial: 200,
    });
    // The change's last fragment stored: it counts as whole, nothing partial.
    stored.push(fragment(4, 2, 200, 800));
    expect((await busResume(inside, start, slot('0/11'))).cursor).not.toHaveProperty('partial');
  });
});

describe('a tail that breaks the chain', () => {
  it('is removed from the break when a foreign message took the place of ours', async () => {
    // Ours 1..3 (3 confirmed), then a deposed publisher's copy of packet 3 where our 4 belonged,
    // then our 5 and 6 stored behind it.
    const log = bus(1, [
      [1, 0, 1, 'one'],
      [2, 0, 1, 'one'],
      [3, 0, 1, 'one'],
      [3, 0, 1, 'one'],
      [5, 0, 1, 'one'],
      [6, 0, 1, 'one'],
    ]);
    const plan = await busResume(log, start, slot('0/31'));
    expect(plan).toEqual({
      resume: { version: 3, lsn: '0/30' },
      cursor: null,
      lastSequence: 6,
      // The first new message chains to what stays last, not to the removed ones.
      kept: expect.objectContaining({ sequence: 3 }),
      repaired: {
        from: 4,
        to: 6,
        after: { version: 3, part: 0, changes: 1, final: 'one' },
        found: { version: 3, part: 0, changes: 1, final: 'one' },
      },
    });
    expect(log.removed).toEqual([6, 5, 4]);
  });

  it('is removed inside a packet; a message of several packets may follow a whole one', async () => {
    // The second message holds packets 2 and 3 whole.
    const log = bus(1, [
      [1, 0, 1, 'one'],
      [3, 0, 2, 'one', undefined, 2],
      [4, 0, 1, null],
      [4, 1, 2, null],
      [9, 0, 1, null],
      [4, 3, 4, 'one'],
    ]);
    const plan = await busResume(log, start, slot('0/11'));
    expect(plan).toMatchObject({
      resume: { version: 3, lsn: '0/30' },
      cursor: { version: 4, nextPart: 2, stored: 2 },
      lastSequence: 6,
      repaired: { from: 5, to: 6 },
    });
    expect(log.removed).toEqual([6, 5]);
  });

  it('leaves a chain that follows, also across removed sequences, and what the slot vouches for', async () => {
    // A tail removed at 3..5 once; packet 2 goes on at 6.
    const log = bus(1, [
      [1, 0, 1, 'one'],
      [2, 0, 1, null],
      [2, 1, 2, null, 6],
    ]);
    expect(await busResume(log, start, slot('0/11'))).toEqual({
      resume: { version: 1, lsn: '0/10' },
      cursor: { version: 2, nextPart: 2, seen: 0, stored: 2 },
      lastSequence: 6,
      kept: expect.objectContaining({ sequence: 6 }),
    });
    // Confirmed through packet 2 (the head): a break before what the slot vouches for is not looked for.
    const confirmed = bus(1, [
      [7, 0, 1, 'one'],
      [1, 0, 1, 'one'],
      [2, 0, 1, 'one'],
    ]);
    const head = async () => ({ version: 2, lsn: '0/20' as Lsn });
    expect(await busResume(confirmed, head, slot('0/21'))).not.toHaveProperty('repaired');
    expect(confirmed.removed).toEqual([]);
  });
});

describe('a tail repair the slot constrains', () => {
  it('looks past a deposed publisher’s messages that follow each other below the head', async () => {
    // Ours: 1, then packets 2..10 in one message (confirmed, the head). A deposed publisher whose
    // messages were cut smaller stored its copies of 3 and 4 behind it: they follow each other
    // and the slot vouches for their commits, yet the chain breaks before them.
    const log = bus(1, [
      [1, 0, 1, 'one'],
      [10, 0, 1, 'one', undefined, 2],
      [3, 0, 1, 'one'],
      [4, 0, 1, 'one'],
    ]);
    const head = async () => ({ version: 10, lsn: '0/A0' as Lsn });
    const plan = await busResume(log, head, slot('0/A1'));
    expect(plan).toMatchObject({
      resume: { version: 10, lsn: '0/A0' },
      cursor: null,
      lastSequence: 4,
      repaired: { from: 3, to: 4 },
    });
    expect(log.removed).toEqual([4, 3]);
  });

  it('is removed where a deposed publisher cut the same packet differently (the counts do not add up)', async () => {
    // Packet 10's 100 changes: the deposed publisher cut them 25, 25, 25, 25; ours, resumed after its
    // first message, 19 at a time. Its third message won the place of our third: the indexes follow
    // (0, 1, 2, 3) but changes 44..49 are missing. Only the counts tell.
    const log = bus(1, [
      [9, 0, 1, 'one'],
      [10, 0, 25, null],
      [10, 1, 44, null],
      [10, 2, 75, null, undefined, undefined, 25],
      [10, 3, 100, 'one'],
    ]);
    const head = async () => ({ version: 9, lsn: '0/90' as Lsn });
    const plan = await busResume(log, head, slot('0/91'));
    expect(plan).toMatchObject({
      cursor: { version: 10, nextPart: 2, seen: 0, stored: 44 },
      repaired: { from: 4, to: 5 },
    });
    expect(log.removed).toEqual([5, 4]);
  });

  it('looks past a stale copy that opens the head’s packet without its end', async () => {
    // Ours: 9, then 10 in two messages (the head, confirmed). A deposed publisher's copies of 9 and
    // of 10's first message follow each other behind it: the head's packet is not whole there.
    const log = bus(1, [
      [9, 0, 1, 'one'],
      [10, 0, 3, null],
      [10, 1, 5, 'one'],
      [9, 0, 1, 'one'],
      [10, 0, 3, null],
    ]);
    const head = async () => ({ version: 10, lsn: '0/A0' as Lsn });
    const plan = await busResume(log, head, slot('0/A1'));
    expect(plan).toMatchObject({ resume: { version: 10, lsn: '0/A0' }, cursor: null });
    expect(log.removed).toEqual([5, 4]);
  });

  it('removes nothing when what stays would end before the slot’s confirmed point', async () => {
    // Packet 3 is confirmed (its WAL is gone) but sits behind a foreign 9: removing from the
    // break would lose it. Fail closed, and leave the bus as it is.
    const log = bus(1, [
      [1, 0, 1, 'one'],
      [2, 0, 1, 'one'],
      [9, 0, 1, 'one'],
      [3, 0, 1, 'one'],
    ]);
    const head = async () => ({ version: 3, lsn: '0/30' as Lsn });
    await expect(busResume(log, head, slot('0/31'))).rejects.toThrow(/nothing was removed/);
    expect(log.removed).toEqual([]);
  });
});

describe('the walk over a bus that ends before the head', () => {
  it('looks back no further than a deposed publisher’s window', async () => {
    // A leader behind what it acknowledged: 1..400 whole, the head and the slot at 500.
    const log = bus(
      1,
      Array.from({ length: 400 }, (_, i): Message => [i + 1, 0, 1, 'one']),
    );
    let reads = 0;
    const before = (sequence: number) => {
      reads++;
      return log.before(sequence);
    };
    const readBack = async (sequence: number) => {
      const read = await log.readBack(sequence);
      reads += read.length;
      return read;
    };
    const counted = { ...log, before, readBack };
    const head = async () => ({ version: 500, lsn: '0/1F40' as Lsn });
    await expect(busResume(counted, head, slot('0/1F41'))).rejects.toThrow(/packets in between/);
    expect(reads).toBeLessThanOrEqual(PUBLISH_LIMITS.messages + 1);
    expect(log.removed).toEqual([]);
  });
});
