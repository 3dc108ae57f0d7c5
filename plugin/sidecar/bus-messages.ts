import { LockstepError } from '../ports/lockstep-error.js';
import type { Change, PacketHeader, PacketPart, Phase } from '../protocol/index.js';
import type { PartPosition } from '../protocol/packet-bus-names.js';
import { encodePacketPart } from '../protocol/packet-part-codec.js';

/** One message to publish: its encoded body and the position its headers carry. */
export interface BusMessage {
  readonly body: Buffer;
  readonly position: PartPosition;
}

/**
 * Where a packet's messages stand while it is published: the next message's
 * index and the packet's changes stored so far; after a restart in the middle
 * of a packet, also how many re-derived changes are stored already.
 */
export interface PacketCursor {
  version: number;
  nextPart: number;
  /** Changes of the packet the stream handed over so far (stored or not). */
  seen: number;
  /** Changes of the packet already on the bus. */
  stored: number;
}

/**
 * The messages for `part`: its changes not stored yet, cut so that each body
 * fits in `maxBody` bytes (halved until it does); the packet's phase goes
 * with its last message only. A single change too large for a message is
 * refused: nothing partial is published.
 */
export function busMessages(part: PacketPart, cursor: PacketCursor, maxBody: number): BusMessage[] {
  const from = Math.max(0, cursor.stored - cursor.seen);
  cursor.seen += part.changes.length;
  const changes = from === 0 ? part.changes : part.changes.slice(from);
  // Every change of a part not final is stored already: nothing to add.
  if (changes.length === 0 && !part.final) return [];
  const out: BusMessage[] = [];
  cut(part.header, changes, part.final?.phase ?? null, cursor, maxBody, out);
  return out;
}

function cut(
  header: PacketHeader,
  changes: readonly Change[],
  phase: Phase | null,
  cursor: PacketCursor,
  maxBody: number,
  out: BusMessage[],
): void {
  const index = cursor.nextPart;
  const body = encodePacketPart({ header, index, changes, final: phase ? { phase } : null });
  if (body.length <= maxBody) {
    cursor.nextPart++;
    cursor.stored += changes.length;
    out.push({
      body,
      position: { version: header.version, part: index, changes: cursor.stored, final: phase },
    });
    return;
  }
  if (changes.length <= 1) {
    throw new LockstepError({
      node: 'bus',
      problem: `one change of packet ${header.version} takes ${body.length} bytes, more than a bus message may (${maxBody})`,
      fix: 'raise max_payload on the NATS servers (up to 64MB)',
      setting: 'max_payload',
    });
  }
  const half = Math.ceil(changes.length / 2);
  cut(header, changes.slice(0, half), null, cursor, maxBody, out);
  cut(header, changes.slice(half), phase, cursor, maxBody, out);
}
