import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import {
  PREVIOUS_HEADER,
  packetChainDigest,
  packetSignedBytes,
  SIGNATURE_HEADER,
} from '../../plugin/protocol/bus-signed-bytes.js';
import type { BusPiece } from '../../plugin/protocol/change-fragments.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import {
  PACKET_HEADERS,
  type PartPosition,
  partPosition,
} from '../../plugin/protocol/packet-bus-names.js';
import { PacketPartFormatError } from '../../plugin/protocol/packet-part-codec.js';
import type { BusSigner, BusVerifier } from './bus-signing.js';

/**
 * A packet message read back by the publisher, on `subject` at `sequence`.
 * Its signature is checked and its digest computed only when asked: the
 * resume walk verifies where the chain does not vouch, and an Ed25519
 * verify costs about 100 µs a message where a SHA-256 of a small one costs
 * a few.
 */
export function storedPacket(
  subject: string,
  sequence: number,
  header: MsgHdrs | undefined,
  data: Uint8Array,
  verifier: BusVerifier,
): StoredPart {
  const get = (name: string) => header?.get(name) || undefined;
  let bytes: Uint8Array | undefined;
  const signedBytes = () => {
    bytes ??= packetSignedBytes(subject, sequence, get, data);
    return bytes;
  };
  let signed: boolean | undefined;
  let digest: string | undefined;
  const chained = get(PREVIOUS_HEADER);
  const checks = {
    signed: () => {
      signed ??= verifier.verify(signedBytes(), get(SIGNATURE_HEADER));
      return signed;
    },
    digest: () => {
      digest ??= packetChainDigest(signedBytes(), get(SIGNATURE_HEADER));
      return digest;
    },
    ...(chained === undefined ? {} : { chained }),
  };
  const read = readPlace(get, data);
  if (read) return { sequence, ...read, ...checks };
  // Any client allowed on the subject can store bytes no lockstep wrote: removed as any foreign message.
  if (!checks.signed()) return { sequence, ...UNREADABLE, ...checks };
  throw new LockstepError({
    node: 'bus',
    problem: `message ${sequence} on subject "${subject}" carries this publisher's signature but this lockstep cannot read it (no Lockstep-Version/-Part/-Changes headers, or a body it does not decode)`,
    fix: 'run the lockstep version that published it (a newer one wrote a format this one does not know)',
  });
}

/** A message's place in the packet stream and its last packet (of several: the one its headers describe); null when unreadable. */
function readPlace(
  get: (name: string) => string | undefined,
  data: Uint8Array,
): { position: PartPosition; part: BusPiece } | null {
  const position = partPosition(get);
  if (!position) return null;
  try {
    const pieces = decodeBusPieces(data);
    const part = pieces[pieces.length - 1];
    return part ? { position, part } : null;
  } catch (error) {
    if (error instanceof PacketPartFormatError) return null;
    throw error;
  }
}

/**
 * The place of an unreadable message: a version no packet has, and an LSN
 * no slot is confirmed past, so it follows nothing, nothing follows it and
 * the slot never vouches for it.
 */
const UNREADABLE = {
  position: { version: -1, part: -1, changes: -1, final: null },
  part: {
    header: { version: -1, lsn: 'FFFFFFFF/FFFFFFFF' as Lsn, xid: 0, commitTime: '' },
    index: -1,
    changes: [],
    final: null,
  },
} as const satisfies { position: PartPosition; part: BusPiece };

/** A message to append, signed: its headers and its chain digest (what the next one names). */
export interface SignedMessage {
  readonly headers: MsgHdrs;
  readonly digest: string;
}

/**
 * Headers naming a message's place in the packet stream, the chain digest of
 * the message appended before it (`previous`; none: the first on the bus),
 * and the signature over them, the body, the subject and `sequence`, where
 * it must be stored.
 */
export function signedMessage(
  signer: BusSigner,
  subject: string,
  sequence: number,
  position: PartPosition,
  body: Uint8Array,
  previous: string | undefined,
): SignedMessage {
  const h = headers();
  h.set(PACKET_HEADERS.version, String(position.version));
  h.set(PACKET_HEADERS.part, String(position.part));
  h.set(PACKET_HEADERS.changes, String(position.changes));
  if (position.final) h.set(PACKET_HEADERS.final, position.final);
  if (position.first !== undefined) h.set(PACKET_HEADERS.first, String(position.first));
  if (previous !== undefined) h.set(PREVIOUS_HEADER, previous);
  const bytes = packetSignedBytes(subject, sequence, (name) => h.get(name) || undefined, body);
  const signature = signer.sign(bytes);
  h.set(SIGNATURE_HEADER, signature);
  return { headers: h, digest: packetChainDigest(bytes, signature) };
}
