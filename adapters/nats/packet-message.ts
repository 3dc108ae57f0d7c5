import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import {
  PREVIOUS_HEADER,
  packetChainDigest,
  packetSignedBytes,
  SIGNATURE_HEADER,
} from '../../plugin/protocol/bus-signed-bytes.js';
import type { BusPiece } from '../../plugin/protocol/change-fragments.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import {
  PACKET_HEADERS,
  type PartPosition,
  partPosition,
} from '../../plugin/protocol/packet-bus-names.js';
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
  const position = partPosition(get);
  if (!position)
    throw new Error(`bus message ${sequence} has no Lockstep-Version/-Part/-Changes headers`);
  // Of a message of several packets, the last: the one its headers describe.
  const pieces = decodeBusPieces(data);
  const part = pieces[pieces.length - 1] as BusPiece;
  let bytes: Uint8Array | undefined;
  const signedBytes = () => {
    bytes ??= packetSignedBytes(subject, sequence, get, data);
    return bytes;
  };
  let signed: boolean | undefined;
  let digest: string | undefined;
  const chained = get(PREVIOUS_HEADER);
  return {
    sequence,
    position,
    part,
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
}

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
