import { collectDefaultMetrics, Registry } from 'prom-client';
import type { AgentStatusRecord } from '../protocol/agent-status-record.js';
import { metricKit, type ReplicaSet, replicaMetrics } from '../sidecar/sidecar-metrics.js';
import type { ReplicaSnapshot } from '../sidecar/sidecar-parts.js';

/** The agent at a scrape: its replica (none while standing by) and whether it holds the lock. */
interface AgentSnapshot extends ReplicaSet {
  readonly active: boolean;
}

/**
 * `lockstep agent`'s Prometheus metrics: the sidecar's per-replica series
 * (same names, one replica), read from the agent's latest status report.
 * Lag is left out: the agent does not read the primary; the publisher exports it.
 */
export function agentMetrics(
  report: () => { record: AgentStatusRecord | null; active: boolean },
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const kit = metricKit<AgentSnapshot>(registry, () => {
    const { record, active } = report();
    return { active, replicas: record ? [replicaOf(record)] : [] };
  });
  replicaMetrics(kit);
  kit.single('lockstep_active', '1 while this agent holds its replica (0: standby)', (s) =>
    s.active ? 1 : 0,
  );
  return registry;
}

function replicaOf(record: AgentStatusRecord): ReplicaSnapshot {
  return {
    name: record.replica,
    state: record.state,
    version: record.version,
    lagVersions: null,
    lagBytes: null,
    lagSeconds: null,
    packetsApplied: record.packetsApplied,
    rowsApplied: record.rowsApplied,
    applyErrors: record.applyErrors,
    commitsNotLanded: record.commitsNotLanded ?? 0,
    error: record.error?.problem ?? null,
  };
}
