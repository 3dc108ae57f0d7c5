import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PacketLog, StoredPart } from '../../plugin/ports/packet-bus.js';
import type { Change } from '../../plugin/protocol/change.js';
import { lsnFromHalves } from '../../plugin/protocol/lsn.js';
import type { PacketPart, ResumePoint } from '../../plugin/protocol/packet.js';
import { decodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import type { Relation } from '../../plugin/protocol/relation.js';
import { busMessages, type PacketCursor } from '../../plugin/sidecar/bus-messages.js';
import { busResume } from '../../plugin/sidecar/bus-resume.js';
import { memoryPacketLog, signature } from '../support/memory-packet-log.js';

const relation: Relation = {
  oid: 1,
  schema: 'public',
  name: 't',
  replicaIdentity: 'default',
  columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true }],
  keyIndexes: [0],
};
const header = (version: number) => ({
  version,
  lsn: lsnFromHalves(0, version * 100),
  xid: version,
  commitTime: 't',
});
const rows = (from: number, count: number, width = 1): Change[] =>
  Array.from({ length: count }, (_, i) => ({
    kind: 'insert',
    relation,
    row: [String(from + i).padStart(width, '0')],
  }));
const cursor = (version: number, stored = 0, nextPart = 0): PacketCursor => ({
  version,
  nextPart,
  seen: 0,
  stored,
});
const ids = (part: PacketPart) => part.changes.map((c) => (c.kind === 'insert' ? c.row.at(0) : ''));

describe('bus messages of a packet', () => {
  it('cut a packet into bodies under the limit, in order, the phase on the last only', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 300, max: 2_000 }),
        (n, max) => {
          const at = cursor(7);
          const messages = [
            ...busMessages(
              { header: header(7), index: 0, changes: rows(0, n, 40), final: { phase: 'one' } },
              at,
              max,
            ),
          ];
          const parts = messages.map((m) => decodePacketPart(m.body));
          expect(messages.every((m) => m.body.length <= max)).toBe(true);
          expect(parts.flatMap(ids)).toEqual(
            rows(0, n, 40).map((c) => (c.kind === 'insert' ? c.row.at(0) : '')),
          );
          expect(parts.map((p) => p.index)).toEqual(parts.map((_, i) => i));
          expect(messages.map((m) => m.position.final)).toEqual(
            parts.map((_, i) => (i === parts.length - 1 ? 'one' : null)),
          );
          expect(messages.at(-1)?.position.changes).toBe(n);
        },
      ),
    );
  });

  it('skip the changes of a packet already stored, numbering on after them', () => {
    const at = cursor(3, 5, 2);
    const first = [
      ...busMessages({ header: header(3), index: 0, changes: rows(0, 4), final: null }, at, 1e6),
    ];
    expect(first).toEqual([]);
    const [second] = [
      ...busMessages(
        { header: header(3), index: 1, changes: rows(4, 4), final: { phase: 'one' } },
        at,
        1e6,
      ),
    ];
    const part = decodePacketPart(second?.body ?? Buffer.alloc(0));
    expect(ids(part)).toEqual(['5', '6', '7']);
    expect(second?.position).toEqual({ version: 3, part: 2, changes: 8, final: 'one' });
  });
});

/** A packet log holding `stored`, sequences from 1. */
function logOf(stored: readonly StoredPart[]): PacketLog {
  return memoryPacketLog([...stored], 1e6);
}

const storedPart = (
  sequence: number,
  version: number,
  part: number,
  changes: number,
  final: boolean,
): StoredPart => ({
  sequence,
  position: { version, part, changes, final: final ? 'one' : null },
  ...signature(sequence),
  part: {
    header: header(version),
    index: part,
    changes: [],
    final: final ? { phase: 'one' } : null,
  },
});

describe('where publishing resumes', () => {
  const start = async (): Promise<ResumePoint> => ({ version: 0, lsn: lsnFromHalves(0, 1) });
  const noSlot = async () => null;

  it('after a whole packet: from it', async () => {
    const plan = await busResume(
      logOf([storedPart(1, 1, 0, 1, true), storedPart(2, 2, 0, 3, true)]),
      start,
      noSlot,
    );
    expect(plan).toEqual({
      resume: { version: 2, lsn: header(2).lsn },
      cursor: null,
      lastSequence: 2,
      kept: expect.objectContaining({ sequence: 2 }),
    });
  });

  it('inside a packet: from the packet before, skipping what is stored', async () => {
    const log = logOf([
      storedPart(1, 1, 0, 1, true),
      storedPart(2, 2, 0, 3, false),
      storedPart(3, 2, 1, 6, false),
    ]);
    expect(await busResume(log, start, noSlot)).toEqual({
      resume: { version: 1, lsn: header(1).lsn },
      cursor: { version: 2, nextPart: 2, seen: 0, stored: 6 },
      lastSequence: 3,
      kept: expect.objectContaining({ sequence: 3 }),
    });
    const first = logOf([storedPart(1, 1, 0, 3, false)]);
    expect((await busResume(first, start, noSlot)).resume).toEqual(await start());
  });

  it('on an empty bus: where attach started; refused when the slot is past the bus', async () => {
    expect((await busResume(logOf([]), start, noSlot)).lastSequence).toBe(0);
    await expect(busResume(logOf([]), start, async () => lsnFromHalves(0, 500))).rejects.toThrow(
      /before the slot's confirmed point/,
    );
  });
});
