import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** Longest one bucket request may take before it counts as failed (ms). */
export const KV_REQUEST_MS = 3_000;

/**
 * A bucket beside the packet stream that keeps only the latest value per
 * key, replicated like the stream: created when missing, else opened as it
 * is (made with other settings when `bus.replicas` changed since).
 */
export function createOrOpenBucket(
  nc: NatsConnection,
  name: string,
  replicas: number,
  maxBytes: number,
): Promise<KV> {
  return new Kvm(nc)
    .create(name, { replicas, history: 1, max_bytes: maxBytes, timeout: KV_REQUEST_MS })
    .catch((error: Error) => {
      if (!/already in use/i.test(error.message)) throw error;
      return new Kvm(nc).open(name, { timeout: KV_REQUEST_MS });
    });
}

/** A memo of `open` that forgets a failed opening, so the next call tries again. */
export function retriedOpen<T>(open: () => Promise<T>): () => Promise<T> {
  let opened: Promise<T> | null = null;
  return () =>
    (opened ??= open().catch((error: unknown) => {
      opened = null;
      throw error;
    }));
}
