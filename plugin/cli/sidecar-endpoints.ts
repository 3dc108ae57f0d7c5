import type { Endpoints } from '../../adapters/http/http-endpoints.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { Sidecar, SidecarSnapshot } from '../sidecar/sidecar.js';
import type { SidecarHistograms } from '../sidecar/sidecar-histograms.js';
import { singleFlight } from '../support/single-flight.js';

/** What the endpoints see of `lockstep run`: the sidecar once it is created, and whether it stops. */
export interface RunState {
  sidecar: Sidecar | null;
  stopping: boolean;
  /** Histograms the sidecar feeds, and build info: registered with the other metrics. */
  histograms?: SidecarHistograms;
  /** The configuration in force (its replicas change on reload). */
  live?: { readonly current: LockstepConfig };
}

/** Metrics of a process still waiting for the primary: nothing is active, read or held yet. */
const STARTING: SidecarSnapshot = {
  active: false,
  streaming: false,
  paused: false,
  headVersion: 0,
  slotRetainedBytes: null,
  slot: null,
  slotLost: null,
  replicas: [],
  twoPhase: { roundsCommitted: 0, roundsAborted: 0, held: null },
  inDoubt: null,
};

/**
 * Serves /healthz, /readyz, /metrics and /status for `lockstep run` (modules
 * loaded only when served). They answer from the start, before the primary
 * is reached, so a liveness probe does not restart a sidecar that waits for
 * its primary; /readyz says it is starting until the sidecar exists.
 * Concurrent /status requests share one read of the nodes: each read opens a
 * session on the primary and every replica, and pollers (a dashboard, curl
 * loops, retries on timeout) must not multiply them on a struggling primary.
 * /metrics reads the sidecar's snapshot in memory, no node.
 */
export async function serveSidecarEndpoints(
  config: LockstepConfig,
  run: RunState,
): Promise<Endpoints> {
  const [
    { sidecarMetrics },
    { serveEndpoints },
    { readiness },
    { readStatus },
    { postgresCluster },
  ] = await Promise.all([
    import('../sidecar/sidecar-metrics.js'),
    import('../../adapters/http/http-endpoints.js'),
    import('../sidecar/readiness.js'),
    import('../status/read-status.js'),
    import('../../adapters/postgres/setup/postgres-setup.js'),
  ]);
  const cluster = postgresCluster(config);
  const metrics = sidecarMetrics(() => run.sidecar?.snapshot() ?? STARTING);
  run.histograms?.register(metrics);
  // Keyed by the configuration in force: a request after a reload reads the reloaded replicas.
  const status = singleFlight(
    (current: LockstepConfig) => readStatus(cluster, current),
    () => run.live?.current ?? config,
  );
  return serveEndpoints(config.http.host, config.http.port, {
    readiness: () => readiness(run.sidecar?.snapshot() ?? null, run.stopping),
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
    status,
  });
}
