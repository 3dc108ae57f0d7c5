import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type {
  AgentStatusReader,
  AgentStatusWriter,
  StoredAgentStatus,
} from '../../plugin/ports/agent-status-bus.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import {
  agentStatusBucket,
  decodeAgentStatus,
  encodeAgentStatus,
} from '../../plugin/protocol/agent-status-record.js';
import { createOrOpenBucket, KV_REQUEST_MS as REQUEST_MS, retriedOpen } from './kv-bucket.js';
import { BUS_NODE, connectBus } from './nats-connection.js';

/** A report is small; the bucket holds one per replica and never grows past this. */
const BUCKET_BYTES = 16 * 1024 * 1024;

/**
 * Writes to the agents' bucket, created on first use when missing and
 * replicated like the packet stream. Only the latest report per replica is
 * kept (history 1). A failed creation is tried again at the next write.
 */
export function agentStatusWriter(
  nc: NatsConnection,
  settings: Pick<BusSettings, 'stream' | 'replicas'>,
): AgentStatusWriter {
  const name = agentStatusBucket(settings.stream);
  const bucket = retriedOpen(() => createOrOpenBucket(nc, name, settings.replicas, BUCKET_BYTES));
  return {
    put: async (record) => {
      const kv = await bucket();
      await kv.put(record.replica, encodeAgentStatus(record), { timeout: REQUEST_MS });
    },
  };
}

/** Reads the agents' reports with a connection of its own, for one `status`. */
export function agentStatusReader(
  settings: Pick<BusSettings, 'servers' | 'stream'>,
): AgentStatusReader {
  const bucket = agentStatusBucket(settings.stream);
  return { bucket, read: (replicas) => readReports(settings, () => replicas) };
}

/** Every report in the agents' bucket (none when no agent ever created it), on one connection. */
export function readAllAgentReports(
  settings: Pick<BusSettings, 'servers' | 'stream'>,
): Promise<Map<string, StoredAgentStatus>> {
  return readReports(settings, async (kv) => {
    const names: string[] = [];
    for await (const key of await kv.keys()) names.push(key);
    return names;
  });
}

/** The reports of the replicas `names` picks, read on a connection of its own. */
async function readReports(
  settings: Pick<BusSettings, 'servers' | 'stream'>,
  names: (kv: KV) => Promise<readonly string[]> | readonly string[],
): Promise<Map<string, StoredAgentStatus>> {
  const bucket = agentStatusBucket(settings.stream);
  // connectBus's failure is a connection LockstepError already: status exits 3.
  const nc = await connectBus(settings, 'lockstep-status', { timeoutMs: REQUEST_MS });
  try {
    const kv = await openBucket(nc, bucket);
    const found = new Map<string, StoredAgentStatus>();
    if (!kv) return found;
    await Promise.all(
      (await names(kv)).map(async (name) => {
        const entry = await kv.get(name);
        const record = entry?.operation === 'PUT' ? decodeAgentStatus(entry.value) : null;
        if (entry && record?.replica === name) found.set(name, { record, storedAt: entry.created });
      }),
    );
    return found;
  } catch (error) {
    if (error instanceof LockstepError) throw error;
    throw new LockstepError({
      node: BUS_NODE,
      problem: `cannot read the agents' reports from bucket ${bucket}: ${(error as Error).message}`,
      fix: 'check that the NATS servers run with JetStream and keep quorum',
      setting: 'connection',
      cause: error,
    });
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The bucket, or null when no agent ever created it. */
async function openBucket(nc: NatsConnection, bucket: string): Promise<KV | null> {
  try {
    const kv = await new Kvm(nc).open(bucket, { timeout: REQUEST_MS });
    await kv.status();
    return kv;
  } catch (error) {
    if (/stream not found|bucket not found/i.test((error as Error).message)) return null;
    throw error;
  }
}
