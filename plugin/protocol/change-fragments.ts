import { constants } from 'node:buffer';
import type { Change } from './change.js';
import type { PacketHeader, PacketPart } from './packet.js';
import {
  decodePacketPart,
  encodePacketPart,
  PACKET_PART_FORMAT,
  readPartBody,
} from './packet-part-codec.js';
import type { RelationInterner } from './relation-interner.js';
import {
  PacketPartFormatError,
  type PartHead,
  Reader,
  readPartHead,
  Writer,
  writePartHead,
} from './wire-bytes.js';

/**
 * One change too large for a bus message travels in fragments: its encoding
 * (see {@link encodeLoneChange}) cut into consecutive messages, each a part
 * head, the encoding's length, where the piece starts in it, then the piece.
 * Each fragment takes a message index of its own; the packet's phase goes
 * with the last fragment when the change ends the packet.
 */
export const CHANGE_FRAGMENT_FORMAT = 2;

/** A piece of one change's encoding, as a bus message carries it. */
export interface PartFragment extends PartHead {
  /** Where `bytes` start in the change's encoding. */
  readonly offset: number;
  /** The length of the change's whole encoding. */
  readonly total: number;
  readonly bytes: Uint8Array;
}

/** What one bus message holds: a packet part, or a fragment of one change. */
export type BusPiece = PacketPart | PartFragment;

export function isFragment(piece: BusPiece): piece is PartFragment {
  return 'bytes' in piece;
}

/**
 * What a message adds to its packet's count of changes (`Lockstep-Changes`
 * counts them through the message): a part its changes, a fragment one when
 * it completes its change. Two publishers that cut a packet differently give
 * messages whose indexes follow but whose counts do not: the count tells.
 */
export function addedChanges(piece: BusPiece): number {
  if (!isFragment(piece)) return piece.changes.length;
  return piece.offset + piece.bytes.length === piece.total ? 1 : 0;
}

/** Whether `next` may come after `previous` in one packet as fragments go: an open change's next bytes, else no fragment past a change's start. */
export function fragmentFollows(previous: BusPiece, next: BusPiece): boolean {
  const open =
    isFragment(previous) && previous.offset + previous.bytes.length < previous.total
      ? previous
      : null;
  if (!open) return !isFragment(next) || next.offset === 0;
  return (
    isFragment(next) && next.total === open.total && next.offset === open.offset + open.bytes.length
  );
}

/**
 * The encoding fragments carry: the change alone as a part of its own (index
 * 0, no phase), so its bytes do not depend on which message it starts at: a
 * publisher restarted mid-change re-derives the same bytes and goes on at the
 * offset stored.
 */
export function encodeLoneChange(header: PacketHeader, change: Change, bytesHint = 0): Buffer {
  // Room for the values up front: growing a buffer of tens of MB by doubling copies it each time.
  return encodePacketPart({ header, index: 0, changes: [change], final: null }, bytesHint + 4096);
}

/** Bytes of a fragment's body besides its piece. */
export function fragmentOverhead(header: PacketHeader): number {
  // Format, version, LSN, xid, commit time, index, phase, total, offset.
  return 1 + 8 + 8 + 4 + 4 + Buffer.byteLength(header.commitTime) + 4 + 1 + 8 + 8;
}

/** The body of a fragment: `piece` is `encoding`'s bytes from `offset`. */
export function encodeFragment(head: PartHead, encoding: Buffer, offset: number, end: number) {
  const piece = encoding.subarray(offset, end);
  const w = new Writer(fragmentOverhead(head.header) + piece.length);
  writePartHead(w, CHANGE_FRAGMENT_FORMAT, head);
  w.u53(encoding.length);
  w.u53(offset);
  w.bytes(piece);
  return w.done();
}

/** What a bus message body holds; throws {@link PacketPartFormatError} on anything else. */
export function decodeBusMessage(body: Uint8Array, relations?: RelationInterner): BusPiece {
  const r = new Reader(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  const format = r.u8();
  if (format === PACKET_PART_FORMAT) return readPartBody(r, relations);
  if (format !== CHANGE_FRAGMENT_FORMAT)
    throw new PacketPartFormatError(
      `format ${format}, this version reads ${PACKET_PART_FORMAT} and ${CHANGE_FRAGMENT_FORMAT}`,
    );
  const head = readPartHead(r);
  const total = r.u53();
  const offset = r.u53();
  const bytes = r.rest();
  if (total > constants.MAX_LENGTH || offset + bytes.length > total)
    throw new PacketPartFormatError(`a fragment of ${offset}+${bytes.length} of ${total} bytes`);
  return { ...head, total, offset, bytes };
}

/**
 * Joins the fragments of one change, copying each piece once into a buffer
 * of the change's size (the messages themselves are not kept).
 */
export class ChangeJoin {
  private readonly buffer: Buffer;
  private at = 0;

  /** @param total the length of the change's encoding, as its fragments say */
  constructor(total: number) {
    this.buffer = Buffer.allocUnsafe(total);
  }

  /** Whether `fragment` is the piece that comes next. */
  follows(fragment: PartFragment): boolean {
    return fragment.offset === this.at && fragment.total === this.buffer.length;
  }

  /** Takes a fragment that {@link follows}; true once the change is whole. */
  add(fragment: PartFragment): boolean {
    if (!this.follows(fragment))
      throw new PacketPartFormatError(
        `a fragment at ${fragment.offset} of ${fragment.total} bytes where ${this.at} of ${this.buffer.length} belongs`,
      );
    this.buffer.set(fragment.bytes, this.at);
    this.at += fragment.bytes.length;
    return this.at === this.buffer.length;
  }

  /** The change (or changes) the joined encoding holds. */
  changes(): readonly Change[] {
    if (this.at !== this.buffer.length)
      throw new PacketPartFormatError(
        `a change joined to ${this.at} of ${this.buffer.length} bytes`,
      );
    return decodePacketPart(this.buffer).changes;
  }
}
