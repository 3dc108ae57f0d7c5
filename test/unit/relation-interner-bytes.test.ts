import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import type { Relation } from '../../plugin/protocol/relation.js';
import { RelationInterner } from '../../plugin/protocol/relation-interner.js';
import { onePhasePacket } from '../support/bus-packets.js';
import { relations } from '../support/relation-arbitrary.js';

const packetOf = (relation: Relation, version: number): PacketPart =>
  onePhasePacket(version, [
    { kind: 'truncate', relations: [relation], cascade: false, restartIdentity: false },
  ]);

describe('relations of bus messages interned by their bytes', () => {
  it('decode to one object per shape of a table, bytes seen last answered without decoding', () => {
    fc.assert(
      fc.property(fc.array(relations, { minLength: 1, maxLength: 12 }), (sequence) => {
        const interner = new RelationInterner();
        const decoded = sequence.map((relation, i) => {
          const [piece] = decodeBusPieces(encodePacketPart(packetOf(relation, i + 1)), interner);
          const change = piece && 'changes' in piece ? piece.changes[0] : undefined;
          if (change?.kind !== 'truncate') throw new Error('expected a truncate');
          return change.relations[0] as Relation;
        });
        sequence.forEach((relation, i) => {
          expect(decoded[i]).toEqual(relation);
          const previous = sequence.findLastIndex((r, j) => j < i && r.oid === relation.oid);
          const same =
            previous >= 0 && JSON.stringify(sequence[previous]) === JSON.stringify(relation);
          expect(decoded[i] === decoded[previous]).toBe(same);
        });
        // The last shape of each table is known by its bytes alone.
        const last = decoded.at(-1) as Relation;
        const again = decodeBusPieces(encodePacketPart(packetOf(last, 99)), interner)[0];
        const change = again && 'changes' in again ? again.changes[0] : undefined;
        expect(change?.kind === 'truncate' && change.relations[0]).toBe(last);
        expect(interner.known(last.oid, Buffer.from('not a relation'))).toBeNull();
      }),
    );
  });
});
