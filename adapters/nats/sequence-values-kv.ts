import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import type { SequenceValuesBus } from '../../plugin/ports/sequence-values-bus.js';
import {
  decodeSequenceValues,
  encodeSequenceValues,
  SEQUENCE_VALUES_KEY,
  sequenceValuesBucket,
} from '../../plugin/protocol/sequence-values.js';
import { createOrOpenBucket, KV_REQUEST_MS, retriedOpen } from './kv-bucket.js';

/** One document of the replicated tables' sequences; the bucket keeps only the latest. */
const BUCKET_BYTES = 16 * 1024 * 1024;

/**
 * The sequence values' bucket (`<stream>_SEQUENCES`), replicated like the
 * packet stream, only the latest value kept. The publisher creates it on its
 * first write; an agent only opens it, and reads nothing until it exists. A
 * failed open is tried again at the next call.
 */
export function sequenceValuesKv(
  connection: () => Promise<NatsConnection>,
  settings: Pick<BusSettings, 'stream' | 'replicas'>,
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
      await (await created()).put(SEQUENCE_VALUES_KEY, encodeSequenceValues(values), {
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
      return entry?.operation === 'PUT' ? decodeSequenceValues(entry.value) : null;
    },
  };
}
