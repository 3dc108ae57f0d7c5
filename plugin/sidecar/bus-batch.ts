import type { PacketHeader, PacketPart } from '../protocol/index.js';
import { BATCH_OVERHEAD, batchedSize, encodePacketBatch } from '../protocol/packet-batch-codec.js';
import { encodePacketPart } from '../protocol/packet-part-codec.js';
import type { BusMessage, PacketCursor } from './bus-messages.js';

/**
 * The most a message of several packets carries: big enough that a backlog
 * of small transactions costs the bus few messages, small enough that an
 * agent's pull (8 MB) holds many.
 */
export const BATCH_BYTES = 512 * 1024;

/**
 * Whether `part` may share a message with other packets: a whole one-phase
 * packet not already partly on the bus. Two-phase packets go alone, each to
 * its own message, as their round starts once that message is stored.
 */
export function batchable(part: PacketPart, cursor: PacketCursor | null): boolean {
  return part.index === 0 && part.final?.phase === 'one' && cursor?.version !== part.header.version;
}

/**
 * Whole packets gathered into one message, each part encoded once, as it is
 * added. A batch of one is an ordinary single-part message.
 */
export class MessageBatch {
  private readonly encoded: Buffer[] = [];
  private readonly parts: PacketPart[] = [];
  private bytes = BATCH_OVERHEAD;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.parts.length;
  }

  /** Adds `part` when it fits (a first part that alone fits a message always does); false otherwise. */
  add(part: PacketPart): boolean {
    const encoded = encodePacketPart(part);
    const limit = this.parts.length === 0 ? this.maxBytes : Math.min(this.maxBytes, BATCH_BYTES);
    if (this.bytes + batchedSize(encoded) > limit) return false;
    this.encoded.push(encoded);
    this.parts.push(part);
    this.bytes += batchedSize(encoded);
    return true;
  }

  /** The message, its headers describing the last packet, and the packets it makes whole. */
  message(): { message: BusMessage; packets: PacketHeader[] } {
    const last = this.parts[this.parts.length - 1] as PacketPart;
    const position = {
      version: last.header.version,
      part: 0,
      changes: last.changes.length,
      final: 'one' as const,
    };
    const packets = this.parts.map((p) => p.header);
    if (this.parts.length === 1)
      return { message: { body: this.encoded[0] as Buffer, position }, packets };
    const first = (this.parts[0] as PacketPart).header.version;
    return {
      message: { body: encodePacketBatch(this.encoded), position: { ...position, first } },
      packets,
    };
  }
}
