import { Gauge, type Registry } from 'prom-client';
import { metricKit, replicaLagMetrics } from './sidecar-metrics.js';
import type { ReplicaSnapshot } from './sidecar-parts.js';

/** A replica as `status` with `bus` reads it: its agent's last report, its lag against the primary. */
export interface BusReplicaReading {
  readonly name: string;
  readonly version: number | null;
  readonly lagVersions: number | null;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  /** Whether a fresh report of its agent was read (false: none, a stale one, or the bus unread). */
  readonly reachable: boolean;
}

/**
 * The publisher's per-replica series with `bus`: the sidecar's version and
 * lag series (same names), as `status` computes them from the agents'
 * reports, and `lockstep_bus_replica_reported`. No state or counters: each
 * agent exports its replica's, and the same series from two targets would
 * fire their alerts twice. A replica without a fresh report has no lag
 * series from a report that never came (a stale one keeps its version, so
 * its lag grows with the primary) and reports 0: `LockstepReplicaUnreported`.
 */
export function busReplicaMetrics(
  registry: Registry,
  replicas: () => readonly BusReplicaReading[] | null,
): void {
  // One reading per scrape for every series, as in process.
  const kit = metricKit(registry, () => {
    const readings = replicas() ?? [];
    return { readings, replicas: readings.map(asSnapshot) };
  });
  replicaLagMetrics(kit);
  new Gauge({
    name: 'lockstep_bus_replica_reported',
    help: "1 while the replica's agent reports to the bus (0: none, a stale report, or the bus unread)",
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of kit.take().readings) this.set({ replica: r.name }, r.reachable ? 1 : 0);
    },
  });
}

/** The reading as the sidecar's replica snapshot, for the shared lag series (state, counters unused). */
function asSnapshot(r: BusReplicaReading): ReplicaSnapshot {
  return {
    name: r.name,
    state: 'unknown',
    version: r.version,
    lagVersions: r.lagVersions,
    lagBytes: r.lagBytes,
    lagSeconds: r.lagSeconds,
    packetsApplied: 0,
    rowsApplied: 0,
    applyErrors: 0,
    commitsNotLanded: 0,
    error: null,
  };
}
