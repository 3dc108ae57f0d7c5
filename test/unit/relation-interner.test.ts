import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactChanges } from '../../plugin/protocol/net-changes.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import { decodeBusPieces, encodePacketBatch } from '../../plugin/protocol/packet-batch-codec.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { RelationInterner } from '../../plugin/protocol/relation-interner.js';
import { numberedRelationWithOid, onePhasePacket } from '../support/bus-packets.js';
import { relations } from '../support/relation-arbitrary.js';

const relation = numberedRelationWithOid(16384);

const insertPacket = (version: number): PacketPart =>
  onePhasePacket(version, [{ kind: 'insert', relation, row: [String(version), 'v'] }]);

describe('relations decoded from the bus', () => {
  it('are one object per distinct relation, across messages: a batch compacts to one statement per table', () => {
    const interner = new RelationInterner();
    const messages = [1, 2, 3].map((first) =>
      encodePacketBatch([first * 10, first * 10 + 1].map((v) => encodePacketPart(insertPacket(v)))),
    );
    const changes = messages
      .flatMap((m) => decodeBusPieces(m, interner))
      .flatMap((piece) => ('changes' in piece ? piece.changes : []));
    expect(changes).toHaveLength(6);
    const net = compactChanges(changes);
    expect(net?.map((n) => n.inserts.length)).toEqual([6]);
    // Without sharing, every message's copy is a table of its own.
    const apart = messages
      .flatMap((m) => decodeBusPieces(m))
      .flatMap((piece) => ('changes' in piece ? piece.changes : []));
    expect(compactChanges(apart)?.length).toBe(6);
  });

  it('shares a table’s object while its shape stays; a shape that returns after a change is a new object', () => {
    fc.assert(
      fc.property(fc.array(relations, { minLength: 1, maxLength: 12 }), (sequence) => {
        const interner = new RelationInterner();
        const interned = sequence.map((r) => interner.intern(structuredClone(r)));
        sequence.forEach((relation, i) => {
          const previous = sequence.findLastIndex((r, j) => j < i && r.oid === relation.oid);
          const same =
            previous >= 0 && JSON.stringify(sequence[previous]) === JSON.stringify(relation);
          expect(interned[i] === interned[previous]).toBe(same);
          if (!same) expect(interned.slice(0, i)).not.toContain(interned[i]);
          expect(interned[i]).toEqual(relation);
        });
      }),
    );
  });

  it('shares an object exactly when everything a relation says is equal', () => {
    fc.assert(
      fc.property(relations, relations, (a, b) => {
        const interner = new RelationInterner();
        const first = interner.intern(a);
        const second = interner.intern(structuredClone(b));
        expect(first).toBe(a);
        expect(first === second).toBe(JSON.stringify(a) === JSON.stringify(b));
        expect(second).toEqual(b);
      }),
    );
  });
});
