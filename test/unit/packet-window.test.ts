import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LARGE_ROW_BYTES, type Lsn, type PacketPart } from '../../plugin/protocol/index.js';
import { PacketWindow } from '../../plugin/sidecar/packet-window.js';

/** Parts for packets `from..to`, each with `size` changes, split into parts of `partSize`. */
function parts(from: number, to: number, size: number, partSize = size): PacketPart[] {
  const out: PacketPart[] = [];
  for (let v = from; v <= to; v++) {
    const header = { version: v, lsn: `0/${v.toString(16)}` as Lsn, xid: v, commitTime: '' };
    const count = Math.max(1, Math.ceil(size / partSize));
    for (let i = 0; i < count; i++) {
      const changes = Array.from({ length: Math.min(partSize, size - i * partSize) || 0 }, () => ({
        kind: 'message' as const,
        prefix: 'lockstep.x',
        content: '',
      }));
      out.push({ header, index: i, changes, final: i === count - 1 ? { phase: 'one' } : null });
    }
  }
  return out;
}

describe('PacketWindow', () => {
  it('finds where a replica continues, or says the packet is gone', () => {
    const w = new PacketWindow(10);
    for (const p of parts(1, 5, 4)) w.push(p);
    expect(w.locate(0)).toBe(0);
    expect(w.locate(2)).toBe(2);
    expect(w.locate(5)).toBe(5); // up to date: the end
    w.setCursor('a', 1);
    expect(w.hasRoom()).toBe(false); // 16 changes still held: cursor a needs everything from seq 1
    expect(w.start).toBe(1); // evicted down to the cursor, no further
    expect(w.locate(0)).toBeNull(); // packet 1 left: a rewind is needed
    w.setCursor('a', 3);
    expect(w.hasRoom()).toBe(true); // 8 changes left after evicting up to the cursor
  });

  it('never locates the middle of a packet whose first part has left', () => {
    const w = new PacketWindow(3);
    for (const p of parts(1, 2, 4, 2)) w.push(p); // packet 1: seq 0-1, packet 2: seq 2-3
    w.setCursor('a', 1);
    w.hasRoom();
    expect(w.start).toBe(1);
    expect(w.locate(0)).toBeNull();
    expect(w.locate(1)).toBe(2);
  });

  it('keeps every part an active cursor still needs, and bounds the rest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.nat(40)), {
          minLength: 1,
          maxLength: 60,
        }),
        (steps) => {
          const w = new PacketWindow(20);
          let version = 0;
          let cursor = 0;
          for (const [size, advance] of steps) {
            version++;
            for (const p of parts(version, version, size, 2)) {
              w.hasRoom();
              w.push(p);
            }
            cursor = Math.min(w.end, cursor + advance);
            w.setCursor('slow', cursor);
            w.hasRoom();
            expect(w.start).toBeLessThanOrEqual(cursor);
            for (let seq = cursor; seq < w.end; seq++) expect(w.at(seq)).toBeDefined();
          }
        },
      ),
    );
  });

  it('lets parts of a large packet go once every active agent has them, not before', () => {
    const w = new PacketWindow(1_000);
    for (const p of parts(1, 1, 6, 2)) w.push(p); // one packet in three parts
    for (const p of parts(2, 2, 1)) w.push(p); // a small one
    w.hasRoom();
    expect(w.start).toBe(0); // no agent yet: kept
    w.setCursor('a', 2);
    w.setCursor('b', 1);
    w.hasRoom();
    expect(w.start).toBe(1); // b still needs part 1
    w.setCursor('b', 4);
    w.hasRoom();
    expect(w.start).toBe(2); // agent a still needs the packet's last part
    w.setCursor('a', 4);
    w.hasRoom();
    expect(w.start).toBe(3); // the small packet stays for deltas, under the bound
  });

  it('counts a large row by its size: it leaves, with what precedes it, once every agent has it', () => {
    const w = new PacketWindow(2_000);
    const [small, large, after] = parts(1, 3, 1);
    const row = { length: 1, at: () => 'x', size: LARGE_ROW_BYTES };
    const relation = { oid: 1, schema: 's', name: 't', replicaIdentity: 'default' as const };
    const insert = {
      kind: 'insert' as const,
      relation: { ...relation, columns: [], keyIndexes: [] },
      row,
    };
    for (const p of [small, { ...(large as PacketPart), changes: [insert] }, after])
      w.push(p as PacketPart);
    w.setCursor('a', 1);
    expect(w.hasRoom()).toBe(true); // 1 + 1025 + 1 of 2,000
    w.push({ ...(parts(4, 4, 1)[0] as PacketPart), changes: [insert] });
    expect(w.hasRoom()).toBe(false); // over the bound, and agent a still needs the first large row
    expect(w.start).toBe(1);
    w.setCursor('a', 4);
    expect(w.hasRoom()).toBe(true);
    expect(w.start).toBe(2); // the first large row left; the second is held for agent a
  });

  it('says it holds no packet once every part has left, without reading a slot that left', () => {
    const w = new PacketWindow(1);
    for (const p of parts(1, 3, 1)) w.push(p);
    w.setCursor('a', 3);
    expect(w.hasRoom()).toBe(true); // all three parts leave: every agent has them, over the bound
    expect(w.start).toBe(3);
    expect(w.newestVersion).toBeNull();
    expect(w.locate(3)).toBe(3);
  });

  it('reset drops everything and keeps numbering', () => {
    const w = new PacketWindow(100);
    for (const p of parts(1, 3, 1)) w.push(p);
    const epoch = w.epoch;
    w.reset();
    expect([w.start, w.end, w.epoch]).toEqual([3, 3, epoch + 1]);
    expect(w.locate(7)).toBe(3);
  });

  it('counts the whole packets held between two positions', () => {
    const w = new PacketWindow(1_000);
    for (const p of parts(1, 3, 4, 2)) w.push(p); // two parts per packet
    expect(w.packetsBetween(w.start, w.end)).toBe(3);
    expect(w.packetsBetween(1, 4)).toBe(2); // final parts at 1 and 3
    expect(w.packetsBetween(2, 3)).toBe(0); // a first part only
    expect(w.packetsBetween(-5, 2)).toBe(1);
  });

  it('keeps the stream at most maxLead changes ahead of the most advanced agent', () => {
    const w = new PacketWindow(1_000, Number.POSITIVE_INFINITY, 8);
    for (const p of parts(1, 3, 4)) w.push(p);
    expect(w.hasRoom()).toBe(true); // no agent yet: only the window's own bound
    w.setCursor('slow', 0);
    w.setCursor('fast', 1);
    expect(w.hasRoom()).toBe(false); // 8 changes ahead of fast
    w.push(parts(4, 4, 4)[0] as PacketPart); // (a part pushed anyway is accounted for)
    expect(w.hasRoom()).toBe(false);
    w.setCursor('fast', 3);
    expect(w.hasRoom()).toBe(true); // 4 ahead
    w.setCursor('fast', 4);
    expect(w.hasRoom()).toBe(true);
    w.reset();
    expect(w.hasRoom()).toBe(true);
  });

  describe('batch cuts', () => {
    const cutsOf = (w: PacketWindow) =>
      Array.from({ length: w.end - w.start }, (_, i) => w.cutAfter(w.start + i));

    it('end a batch once it holds batchRows rows, wherever a replica started reading', () => {
      const w = new PacketWindow(1_000, 10);
      for (const p of parts(1, 7, 4)) w.push(p);
      // 4, 8, 12 rows: cut after the third packet; then 4, 8, 12 again.
      expect(cutsOf(w)).toEqual([null, null, 'rows', null, null, 'rows', null]);
    });

    it('start afresh after a packet that is never batched (large or two-phase)', () => {
      const w = new PacketWindow(1_000, 10);
      for (const p of [...parts(1, 1, 4), ...parts(2, 2, 6, 3), ...parts(3, 5, 4)]) w.push(p);
      expect(cutsOf(w)).toEqual([null, 'rows', 'rows', null, null, 'rows']);
    });

    it('cut the newest part for time on request, and count rows again from there', () => {
      const w = new PacketWindow(1_000, 10);
      for (const p of parts(1, 2, 4)) w.push(p);
      w.cutNewest();
      for (const p of parts(3, 5, 4)) w.push(p);
      expect(cutsOf(w)).toEqual([null, 'time', null, null, 'rows']);
      w.cutNewest(); // already cut for rows: stays a rows cut
      expect(w.cutAfter(w.end - 1)).toBe('rows');
    });

    it('are forgotten with the parts they follow, and when the stream restarts', () => {
      const w = new PacketWindow(4, 8);
      for (const p of parts(1, 2, 4)) w.push(p);
      w.setCursor('a', 2);
      expect(w.hasRoom()).toBe(true); // both packets left
      expect(w.start).toBe(2);
      expect(w.cutAfter(1)).toBeNull();
      for (const p of parts(3, 3, 4)) w.push(p);
      w.cutNewest();
      w.reset();
      for (const p of parts(3, 3, 4)) w.push(p);
      expect(w.cutAfter(w.end - 1)).toBeNull(); // 4 rows since the restart
    });
  });
});
