import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BusPiece } from '../../plugin/protocol/change-fragments.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import {
  decodeBusPieces,
  encodePacketBatch,
  PACKET_BATCH_FORMAT,
} from '../../plugin/protocol/packet-batch-codec.js';
import {
  encodePacketPart,
  PacketPartFormatError,
} from '../../plugin/protocol/packet-part-codec.js';
import { BATCH_BYTES, batchable, MessageBatch } from '../../plugin/sidecar/bus-batch.js';
import { numberedRelationWithOid, onePhasePacket } from '../support/bus-packets.js';

/** Table `t (id, v)`: the codec carries values as text, whatever their type. */
const relation = numberedRelationWithOid(16384);

/** A whole one-phase packet of `rows` inserts whose values take about `width` bytes each. */
function packet(version: number, rows: number, width: number): PacketPart {
  return onePhasePacket(
    version,
    Array.from({ length: rows }, (_, i) => ({
      kind: 'insert' as const,
      relation,
      row: [String(version * 1000 + i), 'x'.repeat(width)],
    })),
  );
}

/** Packets from version 1 on, of random size. */
const packets = fc
  .array(
    fc.record({ rows: fc.integer({ min: 0, max: 4 }), width: fc.integer({ min: 0, max: 3000 }) }),
    {
      minLength: 1,
      maxLength: 40,
    },
  )
  .map((shapes) => shapes.map((s, i) => packet(i + 1, s.rows, s.width)));

/** What the publisher does: fills a batch until a packet does not fit, then starts the next one with it. */
function publish(parts: readonly PacketPart[], maxBody: number) {
  const out: ReturnType<MessageBatch['message']>[] = [];
  let batch = new MessageBatch(maxBody);
  for (const part of parts) {
    if (batch.add(part)) continue;
    out.push(batch.message());
    batch = new MessageBatch(maxBody);
    expect(batch.add(part)).toBe(true);
  }
  out.push(batch.message());
  return out;
}

describe('messages of several whole packets', () => {
  it('carry every packet once, in order, each message within its limit, headers naming its last and first', () => {
    fc.assert(
      fc.property(packets, fc.integer({ min: 20_000, max: 200_000 }), (parts, maxBody) => {
        const messages = publish(parts, maxBody);
        const decoded = messages.flatMap(({ message }) => decodeBusPieces(message.body));
        expect(decoded).toEqual(parts);
        for (const { message, packets: whole } of messages) {
          expect(message.body.length).toBeLessThanOrEqual(Math.min(maxBody, BATCH_BYTES));
          const inside = decodeBusPieces(message.body);
          expect(whole).toEqual(inside.map((p: BusPiece) => p.header));
          const last = inside[inside.length - 1] as PacketPart;
          expect(message.position).toEqual({
            version: last.header.version,
            part: 0,
            changes: last.changes.length,
            final: 'one',
            ...(inside.length > 1 ? { first: inside[0]?.header.version } : {}),
          });
        }
      }),
    );
  });

  it('sends a batch of one as the plain single-part message', () => {
    const part = packet(7, 2, 10);
    const batch = new MessageBatch(1024 * 1024);
    batch.add(part);
    expect(batch.message().message.body).toEqual(encodePacketPart(part));
  });

  it('takes a first packet as big as a message allows, and nothing after a full one', () => {
    const big = packet(1, 1, 700_000);
    const batch = new MessageBatch(1024 * 1024);
    expect(batch.add(big)).toBe(true);
    expect(batch.add(packet(2, 1, 10))).toBe(false);
    expect(new MessageBatch(100_000).add(big)).toBe(false);
  });

  it('refuses a batch that is cut short, has bytes after it, or an unknown format', () => {
    const body = encodePacketBatch([
      encodePacketPart(packet(1, 1, 5)),
      encodePacketPart(packet(2, 1, 5)),
    ]);
    expect(body[0]).toBe(PACKET_BATCH_FORMAT);
    for (let cut = 1; cut < body.length; cut += 7)
      expect(() => decodeBusPieces(body.subarray(0, cut))).toThrow(PacketPartFormatError);
    expect(() => decodeBusPieces(Buffer.concat([body, Buffer.from([0])]))).toThrow(
      /after its last part/,
    );
    expect(() => decodeBusPieces(Buffer.from([9, 0, 0, 0, 0]))).toThrow(/format 9/);
    expect(() => decodeBusPieces(Buffer.from([PACKET_BATCH_FORMAT, 0, 0, 0, 0]))).toThrow(
      /no packet/,
    );
  });

  it('leave out two-phase packets, parts of large ones, and a packet partly on the bus already', () => {
    const whole = packet(5, 1, 1);
    expect(batchable(whole, null)).toBe(true);
    expect(batchable({ ...whole, final: { phase: 'two' } }, null)).toBe(false);
    expect(batchable({ ...whole, final: null }, null)).toBe(false);
    expect(batchable({ ...whole, index: 1 }, null)).toBe(false);
    expect(batchable(whole, { version: 5, nextPart: 1, seen: 0, stored: 1 })).toBe(false);
    expect(batchable(whole, { version: 4, nextPart: 1, seen: 0, stored: 1 })).toBe(true);
  });
});
