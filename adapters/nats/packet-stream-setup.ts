import {
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import { BUS_NODE } from './nats-connection.js';

const NANOS_PER_MS = 1_000_000;

/** What lockstep sets on the stream; everything else keeps the server's defaults. */
function wanted(settings: BusSettings): Partial<StreamConfig> {
  return {
    subjects: [settings.subject],
    num_replicas: settings.replicas,
    max_age: settings.maxAgeMs * NANOS_PER_MS,
    max_bytes: settings.maxBytes,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // Old packets go first: an agent that fell behind retention resyncs, the publisher never stops.
    discard: DiscardPolicy.Old,
  };
}

/**
 * Creates the packet stream, or updates its limits and replication to the
 * configuration. Refuses a stream of that name that holds other subjects: it
 * is someone else's, and lockstep's packets must be alone on theirs.
 */
export async function ensurePacketStream(
  nc: NatsConnection,
  settings: BusSettings,
): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  const config = wanted(settings);
  const existing = await jsm.streams.info(settings.stream).catch((error: Error) => {
    if (/stream not found/i.test(error.message)) return null;
    throw error;
  });
  if (!existing) {
    await jsm.streams.add({ ...config, name: settings.stream });
    return jsm;
  }
  const subjects = existing.config.subjects ?? [];
  if (subjects.length !== 1 || subjects[0] !== settings.subject) {
    throw new LockstepError({
      node: BUS_NODE,
      problem: `the JetStream stream ${settings.stream} holds subjects ${JSON.stringify(subjects)}, not only ${settings.subject}`,
      fix: 'set bus.stream to a name no other stream uses, or remove that stream',
      setting: 'bus.stream',
    });
  }
  const changed = (Object.keys(config) as (keyof StreamConfig)[]).some(
    (key) => JSON.stringify(existing.config[key]) !== JSON.stringify(config[key]),
  );
  if (changed) await jsm.streams.update(settings.stream, { ...existing.config, ...config });
  return jsm;
}
