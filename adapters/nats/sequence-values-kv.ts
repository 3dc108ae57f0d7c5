import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import type { SequenceValuesBus } from '../../plugin/ports/sequence-values-bus.js';
import { sequenceValuesSignedBytes } from '../../plugin/protocol/bus-signed-bytes.js';
import {
  decodeSequenceValues,
  encodeSequenceValues,
  SEQUENCE_VALUES_KEY,
  sequenceValuesBucket,
} from '../../plugin/protocol/sequence-values.js';
import type { BusSigner, BusVerifier } from './bus-signing.js';
import { createOrOpenBucket, KV_REQUEST_MS, retriedOpen } from './kv-bucket.js';

/** One document of the replicated tables' sequences; the bucket keeps only the latest. */
const BUCKET_BYTES = 16 * 1024 * 1024;

/**
 * The sequence values' bucket (`<stream>_SEQUENCES`), replicated like the
 * packet stream, only the latest value kept. The publisher creates it on its
 * first write; an agent only opens it, and reads nothing until it exists. A
 * failed open is tried again at the next call. The value is the signature
 * (base64, then a line break) and the document: whoever may write the bucket
 * must not set an agent's sequences. A value not signed with `lockstep run`'s
 * key is not applied (read as none) and logged.
 */
export function sequenceValuesKv(
  connection: () => Promise<NatsConnection>,
  settings: Pick<BusSettings, 'stream' | 'replicas'>,
  /** The publisher signs what it writes; an agent verifies what it reads. */
  trust: { readonly signer: BusSigner } | { readonly verifier: BusVerifier; readonly log: Logger },
): SequenceValuesBus {
  const name = sequenceValuesBucket(settings.stream);
  const created = retriedOpen(async () =>
    createOrOpenBucket(await connection(), name, settings.replicas, BUCKET_BYTES),
  );
  const opened = retriedOpen(async () => {
    const kv = await new Kvm(await connection()).open(name, { timeout: KV_REQUEST_MS });
    await kv.status();
    return kv;
  });
  return {
    put: async (values) => {
      if (!('signer' in trust)) throw new Error('an agent does not write the sequence values');
      const document = encodeSequenceValues(values);
      const signed = trust.signer.sign(
        sequenceValuesSignedBytes(name, SEQUENCE_VALUES_KEY, document),
      );
      await (await created()).put(SEQUENCE_VALUES_KEY, framed(signed, document), {
        timeout: KV_REQUEST_MS,
      });
    },
    get: async () => {
      let kv: KV;
      try {
        kv = await opened();
      } catch (error) {
        if (/stream not found|bucket not found/i.test((error as Error).message)) return null;
        throw error;
      }
      const entry = await kv.get(SEQUENCE_VALUES_KEY);
      if (entry?.operation !== 'PUT') return null;
      if (!('verifier' in trust)) return null;
      const { signature, document } = unframed(entry.value);
      const bytes = sequenceValuesSignedBytes(name, SEQUENCE_VALUES_KEY, document);
      if (trust.verifier.verify(bytes, signature)) return decodeSequenceValues(document);
      trust.log.error(
        { bucket: name, revision: entry.revision, event: 'bus-signature-invalid' },
        'sequence values not signed by lockstep run: not applied',
      );
      return null;
    },
  };
}

const NEWLINE = 0x0a;

/** The stored value: the signature, a line break, the document. */
function framed(signature: string, document: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${signature}\n`);
  const out = new Uint8Array(head.length + document.length);
  out.set(head, 0);
  out.set(document, head.length);
  return out;
}

/** The signature and document of a stored value (no line break: no signature). */
function unframed(value: Uint8Array): { signature: string | undefined; document: Uint8Array } {
  const at = value.indexOf(NEWLINE);
  if (at < 0) return { signature: undefined, document: value };
  return {
    signature: new TextDecoder().decode(value.subarray(0, at)),
    document: value.subarray(at + 1),
  };
}
