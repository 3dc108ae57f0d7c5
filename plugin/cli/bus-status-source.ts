import { busSettings } from '../config/bus-settings.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { BusStatusSource } from '../status/bus-replicas.js';

/** With `bus`, the replicas are read from their agents' reports, never from the replicas. */
export async function busStatusSource(
  config: LockstepConfig,
  configFile?: string,
): Promise<BusStatusSource | undefined> {
  const bus = busSettings(config);
  if (!bus) return undefined;
  const { agentStatusReader } = await import('../../adapters/nats/agent-status-kv.js');
  return { reader: agentStatusReader(bus), ...(configFile ? { configFile } : {}) };
}
