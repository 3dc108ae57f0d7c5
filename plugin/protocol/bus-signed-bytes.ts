import { createHash } from 'node:crypto';
import { PACKET_HEADERS } from './packet-bus-names.js';

/**
 * What `lockstep run` signs on the bus (README, "The bus is trusted as the
 * primary is"): a canonical byte string per message, so an agent checks the
 * signature before it decodes or obeys anything. Each kind starts with its
 * own tag, so a signature over one can never pass as the other.
 */

/** The header carrying a message's signature (base64 Ed25519). */
export const SIGNATURE_HEADER = 'Lockstep-Sig';

/**
 * The header naming the chain digest ({@link packetChainDigest}) of the
 * message this publisher appended before: base64url SHA-256. Absent on the
 * first message to an empty bus, and on a bus the older lockstep wrote.
 */
export const PREVIOUS_HEADER = 'Lockstep-Prev';

/** Every packet header an agent reads, in the order they are signed. */
const SIGNED_PACKET_HEADERS = [
  PACKET_HEADERS.version,
  PACKET_HEADERS.part,
  PACKET_HEADERS.changes,
  PACKET_HEADERS.final,
  PACKET_HEADERS.first,
] as const;

const encoder = new TextEncoder();

function joined(prefix: string, body: Uint8Array): Uint8Array {
  const head = encoder.encode(prefix);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/**
 * The bytes signed for a packet message: its subject, the stream sequence it
 * is stored at (a genuine message copied to another place fails), the
 * position headers (a missing one as empty: readers treat both alike) and
 * the body. Header values and subjects hold no line breaks; the body is last.
 * With {@link PREVIOUS_HEADER}, the tag is `lockstep-packet-v2` and the
 * header is signed too: the resume walk takes a message as the publisher's
 * when its successor, verified, names its digest, so an unsigned digest
 * would let whoever can rewrite headers (a stream restored from a doctored
 * backup, a server in the middle) make a verified message vouch for any
 * forged message before it, whose digest anyone can compute. v1 stays as it
 * was: messages stored before the chain still verify.
 */
export function packetSignedBytes(
  subject: string,
  sequence: number,
  header: (name: string) => string | undefined,
  body: Uint8Array,
): Uint8Array {
  const previous = header(PREVIOUS_HEADER);
  const lines = [
    previous === undefined ? 'lockstep-packet-v1' : 'lockstep-packet-v2',
    subject,
    String(sequence),
    ...SIGNED_PACKET_HEADERS.map((name) => `${name}:${header(name) ?? ''}`),
    ...(previous === undefined ? [] : [`${PREVIOUS_HEADER}:${previous}`]),
  ];
  return joined(`${lines.join('\n')}\n`, body);
}

/**
 * A packet message's chain digest: SHA-256 of its signed bytes (which hold
 * its subject and sequence: a copy stored elsewhere has another) and its
 * signature, base64url. Its successor from the same publisher names it in
 * {@link PREVIOUS_HEADER}.
 */
export function packetChainDigest(signedBytes: Uint8Array, signature: string | undefined): string {
  return createHash('sha256')
    .update(signedBytes)
    .update(`\n${signature ?? ''}`)
    .digest('base64url');
}

/** The bytes signed for a coordinator's request to an agent: its subject and its body (which holds the epoch). */
export function requestSignedBytes(subject: string, body: Uint8Array): Uint8Array {
  return joined(`lockstep-request-v1\n${subject}\n`, body);
}

/**
 * The bytes signed for the coordinator's answer to an agent's in-doubt
 * question: the question's subject (so the slot), the gid asked about and the
 * decision. A genuine answer replayed later for the same gid is harmless: a
 * gid's decision is final, so it only repeats what the coordinator said.
 */
export function decisionSignedBytes(subject: string, gid: string, decision: string): Uint8Array {
  return encoder.encode(`lockstep-decision-v1\n${subject}\n${gid}\n${decision}\n`);
}

/**
 * The bytes signed for the coordinator's answer on `stream` (paused or not):
 * the subject, the nonce of the question it answers (an old answer replayed
 * fails) and the answer.
 */
export function streamStandingSignedBytes(
  subject: string,
  nonce: string,
  paused: boolean,
): Uint8Array {
  return encoder.encode(`lockstep-stream-v1\n${subject}\n${nonce}\n${paused}\n`);
}

/**
 * The bytes signed for the primary's sequence values in their bucket: the
 * bucket and key (the stream's and slot's), then the document. An old genuine
 * document written again only moves sequences to values the primary had: an
 * agent never moves a sequence back.
 */
export function sequenceValuesSignedBytes(
  bucket: string,
  key: string,
  document: Uint8Array,
): Uint8Array {
  return joined(`lockstep-sequences-v1\n${bucket}\n${key}\n`, document);
}
