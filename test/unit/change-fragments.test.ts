import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PartSequence } from '../../plugin/agent/part-sequence.js';
import type { Change } from '../../plugin/protocol/change.js';
import {
  type BusPiece,
  decodeBusMessage,
  isFragment,
} from '../../plugin/protocol/change-fragments.js';
import { lsnFromHalves } from '../../plugin/protocol/lsn.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import { busMessages, type PacketCursor } from '../../plugin/sidecar/bus-messages.js';
import { numberedRelationWithOid } from '../support/bus-packets.js';

/** Table `t (id, v)`: the codec carries values as text, whatever their type. */
const relation = numberedRelationWithOid(1);
const header = (version: number) => ({
  version,
  lsn: lsnFromHalves(0, version * 100),
  xid: version,
  commitTime: '2026-01-01 00:00:00+00',
});
const insert = (id: number, bytes: number): Change => ({
  kind: 'insert',
  relation,
  // Multi-byte characters: a cut may fall inside one.
  row: [String(id), 'é'.repeat(Math.floor(bytes / 2)) + 'x'.repeat(bytes % 2)],
});
const cursor = (version: number): PacketCursor => ({ version, nextPart: 0, seen: 0, stored: 0 });

/** The parts an agent takes from `bodies`, read from the first message of `version`. */
function read(version: number, bodies: readonly Buffer[]): PacketPart[] {
  const sequence = new PartSequence(version);
  const parts: PacketPart[] = [];
  for (const body of bodies) {
    const checked = sequence.check(decodeBusMessage(body));
    if (checked.verdict === 'gap' || checked.verdict === 'duplicate')
      throw new Error(checked.verdict);
    if (checked.verdict === 'take') parts.push(checked.part);
  }
  return parts;
}

describe('a change larger than a bus message', () => {
  it('is cut into messages under the limit and joined back into the same changes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 200, max: 4_000 }),
        fc.constantFrom('one' as const, 'two' as const),
        (sizes, max, phase) => {
          const changes = sizes.map((bytes, id) => insert(id, bytes));
          const part = { header: header(4), index: 0, changes, final: { phase } };
          const messages = [...busMessages(part, cursor(4), max)];
          expect(messages.every((m) => m.body.length <= max)).toBe(true);
          expect(messages.map((m) => m.position.part)).toEqual(messages.map((_, i) => i));
          expect(messages.map((m) => m.position.final)).toEqual(
            messages.map((_, i) => (i === messages.length - 1 ? phase : null)),
          );
          const parts = read(
            4,
            messages.map((m) => m.body),
          );
          expect(parts.flatMap((p) => p.changes)).toEqual(changes);
          expect(parts.map((p) => p.index)).toEqual(parts.map((_, i) => i));
          expect(parts.at(-1)?.final).toEqual({ phase });
          // Each message counts the changes whole through it: a fragment before the last counts none more.
          const pieces = messages.map((m) => decodeBusMessage(m.body));
          let whole = 0;
          for (const [i, piece] of pieces.entries()) {
            if (!isFragment(piece)) whole += piece.changes.length;
            else if (piece.offset + piece.bytes.length === piece.total) whole++;
            expect(messages[i]?.position.changes).toBe(whole);
          }
        },
      ),
    );
  });

  it('goes on at the byte stored when publishing restarts mid-change, also with another limit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3_000, max: 30_000 }),
        fc.integer({ min: 300, max: 2_000 }),
        fc.integer({ min: 300, max: 2_000 }),
        fc.nat(),
        (bytes, max, maxAfter, stop) => {
          const changes = [insert(1, 10), insert(2, bytes), insert(3, 10)];
          const part = { header: header(9), index: 0, changes, final: { phase: 'one' as const } };
          const first = [...busMessages(part, cursor(9), max)];
          // Killed after `kept` messages were stored, inside the big change.
          const fragments = first.filter((m) => isFragment(decodeBusMessage(m.body)));
          const kept =
            first.indexOf(fragments[0] as (typeof first)[number]) +
            1 +
            (stop % (fragments.length - 1));
          const last = decodeBusMessage((first[kept - 1] as (typeof first)[number]).body);
          const position = (first[kept - 1] as (typeof first)[number]).position;
          const resumed: PacketCursor = {
            version: 9,
            nextPart: position.part + 1,
            seen: 0,
            stored: position.changes,
            ...(isFragment(last) ? { partial: last.offset + last.bytes.length } : {}),
          };
          const rest = [...busMessages(part, resumed, maxAfter)];
          const bodies = [...first.slice(0, kept), ...rest].map((m) => m.body);
          expect(read(9, bodies).flatMap((p) => p.changes)).toEqual(changes);
        },
      ),
    );
  });

  it('is a gap when a fragment is missing, and a fragment is not read as a part', () => {
    const messages = [
      ...busMessages(
        { header: header(2), index: 0, changes: [insert(1, 5_000)], final: { phase: 'one' } },
        cursor(2),
        1_000,
      ),
    ];
    const sequence = new PartSequence(2);
    const pieces: BusPiece[] = messages.map((m) => decodeBusMessage(m.body));
    expect(sequence.check(pieces[0] as BusPiece).verdict).toBe('joining');
    // The third where the second belongs: its index says so, and so would its offset.
    expect(sequence.check(pieces[2] as BusPiece).verdict).toBe('gap');
    const shifted = { ...(pieces[2] as BusPiece), index: 1 };
    expect(sequence.check(shifted).verdict).toBe('gap');
    expect(sequence.check(pieces[0] as BusPiece).verdict).toBe('duplicate');
  });
});
