import { type BusPiece, CHANGE_FRAGMENT_FORMAT, decodeBusMessage } from './change-fragments.js';
import { decodePacketPart, PACKET_PART_FORMAT } from './packet-part-codec.js';
import type { RelationInterner } from './relation-interner.js';
import { PacketPartFormatError, Reader } from './wire-bytes.js';

/**
 * A bus message that carries several whole packets: a format byte, their
 * count, then each part as `encodePacketPart` writes it, behind its byte
 * length. Small transactions share a message so that the bus's cost per
 * message (a quorum write on every stream replica) is paid once for many.
 */
export const PACKET_BATCH_FORMAT = 3;

/** The bytes of a message carrying `encoded` (parts already encoded, in order). */
export function encodePacketBatch(encoded: readonly Buffer[]): Buffer {
  let size = 5;
  for (const part of encoded) size += 4 + part.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = PACKET_BATCH_FORMAT;
  let at = out.writeUInt32BE(encoded.length, 1);
  for (const part of encoded) {
    at = out.writeUInt32BE(part.length, at);
    at += part.copy(out, at);
  }
  return out;
}

/** The bytes one encoded part takes inside a batch message. */
export function batchedSize(encoded: Buffer): number {
  return 4 + encoded.length;
}

/** The bytes of a batch message before its parts. */
export const BATCH_OVERHEAD = 5;

/** What a bus message holds, in order: a part, a fragment of one change, or several whole packets. */
export function decodeBusPieces(body: Uint8Array, relations?: RelationInterner): BusPiece[] {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const format = bytes[0];
  if (format !== PACKET_BATCH_FORMAT) {
    if (format === PACKET_PART_FORMAT || format === CHANGE_FRAGMENT_FORMAT)
      return [decodeBusMessage(bytes, relations)];
    throw new PacketPartFormatError(
      `format ${format}, this version reads ${PACKET_PART_FORMAT}, ${CHANGE_FRAGMENT_FORMAT} and ${PACKET_BATCH_FORMAT}`,
    );
  }
  // The format byte is read above; each part is read behind its length, bounds checked by the reader.
  const r = new Reader(bytes.subarray(1));
  const parts: BusPiece[] = [];
  for (let n = r.u32(); n > 0; n--) parts.push(decodePacketPart(r.bytes(r.u32()), relations));
  const after = r.rest().length;
  if (after > 0) throw new PacketPartFormatError(`${after} bytes after its last part`);
  if (parts.length === 0) throw new PacketPartFormatError('a batch of no packet');
  return parts;
}
