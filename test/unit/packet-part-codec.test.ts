import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../plugin/protocol/change.js';
import { lsnFromHalves } from '../../plugin/protocol/lsn.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import {
  decodePacketPart,
  encodePacketPart,
  PACKET_PART_FORMAT,
  PacketPartFormatError,
} from '../../plugin/protocol/packet-part-codec.js';
import type { Relation } from '../../plugin/protocol/relation.js';
import { UNCHANGED_TOAST } from '../../plugin/protocol/value.js';

const text = fc.string({ unit: 'binary', maxLength: 12 });
const value = fc.oneof(fc.constant(null), fc.constant(UNCHANGED_TOAST), text);
const u32 = fc.nat({ max: 0xffffffff });

const relation: fc.Arbitrary<Relation> = fc
  .record({
    oid: u32,
    schema: text,
    name: text,
    replicaIdentity: fc.constantFrom('default', 'nothing', 'full', 'index' as const),
    columns: fc.array(
      fc.record({
        name: text,
        typeOid: u32,
        typeMod: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        typeName: fc.option(text, { nil: null }),
        isKey: fc.boolean(),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map((r) => ({ ...r, keyIndexes: r.columns.flatMap((c, i) => (c.isKey ? [i] : [])) }));

const change = (relations: readonly Relation[]): fc.Arbitrary<Change> => {
  const of = fc.constantFrom(...relations);
  const values = fc.array(value, { maxLength: 4 });
  return fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), relation: of, row: values }),
    fc.record({
      kind: fc.constant('update' as const),
      relation: of,
      row: values,
      key: fc.option(values, { nil: null }),
    }),
    fc.record({ kind: fc.constant('delete' as const), relation: of, key: values }),
    fc.record({
      kind: fc.constant('truncate' as const),
      relations: fc.array(of, { minLength: 1, maxLength: 3 }),
      cascade: fc.boolean(),
      restartIdentity: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('message' as const), prefix: text, content: text }),
  );
};

const part: fc.Arbitrary<PacketPart> = fc
  .array(relation, { minLength: 1, maxLength: 3 })
  .chain((relations) =>
    fc.record({
      header: fc.record({
        version: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        lsn: fc.tuple(u32, u32).map(([h, l]) => lsnFromHalves(h, l)),
        xid: u32,
        commitTime: fc.constant('2026-11-29 02:07:29.123456+00'),
      }),
      index: u32,
      changes: fc.array(change(relations), { maxLength: 8 }),
      final: fc.option(fc.record({ phase: fc.constantFrom('one', 'two' as const) }), {
        nil: null,
      }),
    }),
  );

describe('packet part codec', () => {
  it('decodes what it encodes', () => {
    fc.assert(
      fc.property(part, (p) => {
        expect(decodePacketPart(encodePacketPart(p))).toEqual(p);
      }),
    );
  });

  it('keeps one relation object per relation of a part', () => {
    fc.assert(
      fc.property(part, (p) => {
        const decoded = decodePacketPart(encodePacketPart(p));
        const before = new Set(p.changes.flatMap(relationsOfChange)).size;
        expect(new Set(decoded.changes.flatMap(relationsOfChange)).size).toBe(before);
      }),
    );
  });

  it('refuses every cut-short body', () => {
    fc.assert(
      fc.property(part, fc.nat(), (p, at) => {
        const bytes = encodePacketPart(p);
        const cut = bytes.subarray(0, at % bytes.length);
        expect(() => decodePacketPart(cut)).toThrow(PacketPartFormatError);
      }),
    );
  });

  it('refuses another format and trailing bytes', () => {
    const bytes = encodePacketPart({
      header: { version: 7, lsn: lsnFromHalves(0, 16), xid: 1, commitTime: 't' },
      index: 0,
      changes: [],
      final: { phase: 'one' },
    });
    const other = Buffer.from(bytes);
    other[0] = PACKET_PART_FORMAT + 1;
    expect(() => decodePacketPart(other)).toThrow(/format 2, this version reads 1/);
    expect(() => decodePacketPart(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(
      /1 bytes after its end/,
    );
    expect(() => decodePacketPart(Buffer.from('{"json":true}'))).toThrow(PacketPartFormatError);
  });

  it('reads rows that decode values lazily, as the stream hands them over', () => {
    const rel: Relation = {
      oid: 1,
      schema: 'public',
      name: 't',
      replicaIdentity: 'default',
      columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true }],
      keyIndexes: [0],
    };
    const row = { length: 1, at: (i: number) => (i === 0 ? '42' : undefined), size: 2 };
    const decoded = decodePacketPart(
      encodePacketPart({
        header: { version: 1, lsn: lsnFromHalves(0, 1), xid: 9, commitTime: 't' },
        index: 0,
        changes: [{ kind: 'insert', relation: rel, row }],
        final: { phase: 'one' },
      }),
    );
    expect(decoded.changes).toEqual([{ kind: 'insert', relation: rel, row: ['42'] }]);
  });
});

function relationsOfChange(c: Change): Relation[] {
  return c.kind === 'truncate' ? [...c.relations] : c.kind === 'message' ? [] : [c.relation];
}
