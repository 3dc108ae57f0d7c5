import {
  encodeFragment,
  encodeLoneChange,
  fragmentOverhead,
} from '../protocol/change-fragments.js';
import type { Change, PacketHeader, PacketPart, Phase } from '../protocol/index.js';
import type { PartPosition } from '../protocol/packet-bus-names.js';
import { encodePacketPart } from '../protocol/packet-part-codec.js';

/** One message to publish: its encoded body and the position its headers carry. */
export interface BusMessage {
  readonly body: Buffer;
  readonly position: PartPosition;
  /** A fragment of a change other than its last: stored, the bus ends inside the change. */
  readonly midChange?: boolean;
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
  /** Bytes of the next change's encoding already on the bus in fragments (absent: none). */
  partial?: number;
}

/**
 * The messages for `part`, built as they are taken (a change in fragments is
 * not held in messages all at once): its changes not stored yet, cut so that each body
 * fits in `maxBody` bytes (halved until it does); the packet's phase goes
 * with its last message only. A single change too large for a message goes
 * in fragments, as does one whose first fragments are stored already.
 */
export function* busMessages(
  part: PacketPart,
  cursor: PacketCursor,
  maxBody: number,
): Generator<BusMessage, void> {
  const from = Math.max(0, cursor.stored - cursor.seen);
  cursor.seen += part.changes.length;
  let changes = from === 0 ? part.changes : part.changes.slice(from);
  // Every change of a part not final is stored already: nothing to add.
  if (changes.length === 0 && !part.final) return;
  const phase = part.final?.phase ?? null;
  const [first] = changes;
  if (cursor.partial && first) {
    yield* fragments(part.header, first, changes.length === 1 ? phase : null, cursor, maxBody);
    changes = changes.slice(1);
    if (changes.length === 0) return;
  }
  yield* cut(part.header, changes, phase, cursor, maxBody);
}

function* cut(
  header: PacketHeader,
  changes: readonly Change[],
  phase: Phase | null,
  cursor: PacketCursor,
  maxBody: number,
): Generator<BusMessage, void> {
  const [only] = changes;
  // A change whose values alone overflow a message is not encoded as a part only to be thrown away.
  if (only && changes.length === 1 && changeBytes(only) > maxBody) {
    yield* fragments(header, only, phase, cursor, maxBody);
    return;
  }
  const index = cursor.nextPart;
  const body = encodePacketPart({ header, index, changes, final: phase ? { phase } : null });
  if (body.length <= maxBody) {
    cursor.nextPart++;
    cursor.stored += changes.length;
    yield {
      body,
      position: { version: header.version, part: index, changes: cursor.stored, final: phase },
    };
    return;
  }
  if (only && changes.length === 1) {
    yield* fragments(header, only, phase, cursor, maxBody);
    return;
  }
  const half = Math.ceil(changes.length / 2);
  yield* cut(header, changes.slice(0, half), null, cursor, maxBody);
  yield* cut(header, changes.slice(half), phase, cursor, maxBody);
}

/**
 * `change` in consecutive fragments from the bytes already stored
 * (`cursor.partial`). Until its last fragment, a message counts the change as
 * not stored: a restart in between goes on at the byte it stopped at.
 */
function* fragments(
  header: PacketHeader,
  change: Change,
  phase: Phase | null,
  cursor: PacketCursor,
  maxBody: number,
): Generator<BusMessage, void> {
  const encoding = encodeLoneChange(header, change, changeBytes(change));
  const room = Math.max(1, maxBody - fragmentOverhead(header));
  for (let offset = cursor.partial ?? 0; offset < encoding.length; offset += room) {
    const end = Math.min(encoding.length, offset + room);
    const last = end === encoding.length;
    const index = cursor.nextPart++;
    const final = last && phase ? { phase } : null;
    if (last) cursor.stored++;
    cursor.partial = last ? undefined : end;
    yield {
      body: encodeFragment({ header, index, final }, encoding, offset, end),
      position: {
        version: header.version,
        part: index,
        changes: cursor.stored,
        final: final?.phase ?? null,
      },
      midChange: !last,
    };
  }
}

/** Bytes of a change's values when known without reading them (a row's size): a lower bound of its encoding. */
function changeBytes(change: Change): number {
  if (change.kind === 'insert' || change.kind === 'update') return change.row.size ?? 0;
  return change.kind === 'message' ? change.content.length : 0;
}
