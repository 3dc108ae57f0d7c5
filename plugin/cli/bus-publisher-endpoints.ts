import type { Logger } from 'pino';
import type { Endpoints } from '../../adapters/http/http-endpoints.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { SlotHealth } from '../ports/slot-health.js';
import type { BusPublisher } from '../sidecar/bus-publisher.js';
import type { BusPublisherView } from '../sidecar/bus-publisher-metrics.js';
import type { BusReplicaReading } from '../sidecar/bus-replica-metrics.js';
import type { BusRounds } from '../sidecar/bus-rounds.js';
import { singleFlight } from '../support/single-flight.js';
import { readBusReplicaLag } from './bus-replica-readings.js';
import { reportFailure } from './cli-output.js';
import { announce } from './run-command.js';

/** What the endpoints see of `lockstep run` with `bus`: its parts once made, and whether it stops. */
export interface BusRunState {
  publisher: BusPublisher | null;
  rounds: BusRounds | null;
  stopping: boolean;
}

/** Where the process came from: `lockstep_build_info`, and the file status hints name. */
export interface BusRunOrigin {
  readonly version: string;
  readonly configFile?: string;
}

/** How often the slot, the replicas' lag and the agents' in-doubt gids are read (ms), as in process. */
const OBSERVE_MS = 5_000;

/**
 * The endpoints when `http.port` is set (null when 0), served at once; a
 * port that cannot be bound ends the process now, not once the primary answers.
 */
export function busPublisherEndpoints(
  config: LockstepConfig,
  run: BusRunState,
  origin: BusRunOrigin,
  log: Logger,
): Promise<Endpoints | null> {
  if (config.http.port === 0) return Promise.resolve(null);
  const serving = serveBusPublisherEndpoints(config, run, origin).then((e) => announce(e, log));
  serving.catch(reportFailure);
  return serving;
}

/**
 * Serves /healthz, /readyz, /metrics and /status for `lockstep run` with
 * `bus`, from the start (before the primary is reached), as in process.
 * /readyz and /metrics read the publisher's snapshot in memory; the slot
 * (one query on the primary), the replicas' lag (as `status` reads it, from
 * the agents' reports; on a standby too, so it is there at a takeover) and
 * the agents' in-doubt gids (asked of the agents while active) are read
 * every few seconds off the publishing path.
 * /status is `status --json` with `bus` (replicas from the agents' reports on
 * the bus), concurrent requests sharing one read.
 */
async function serveBusPublisherEndpoints(
  config: LockstepConfig,
  run: BusRunState,
  origin: BusRunOrigin,
): Promise<Endpoints> {
  const [
    { busPublisherMetrics },
    { serveEndpoints },
    { busPublisherReadiness },
    { readStatus },
    { postgresCluster },
    { StatusStore },
    { busStatusSource },
    { SidecarHistograms },
  ] = await Promise.all([
    import('../sidecar/bus-publisher-metrics.js'),
    import('../../adapters/http/http-endpoints.js'),
    import('../sidecar/readiness.js'),
    import('../status/read-status.js'),
    import('../../adapters/postgres/setup/postgres-setup.js'),
    import('../../adapters/postgres/control/status-store.js'),
    import('./bus-status-source.js'),
    import('../sidecar/sidecar-histograms.js'),
  ]);
  const cluster = postgresCluster(config);
  const source = await busStatusSource(config, origin.configFile);
  // /status and the replicas' metrics share one read at a time.
  const status = singleFlight(
    (current: LockstepConfig) => readStatus(cluster, current, source),
    () => config,
  );
  const names = config.replicas.map((r) => r.name);
  const store = new StatusStore(config.primary, config.slot, config.controlTimeoutMs);
  const observed = new Observed(
    run,
    () => store.slotHealth(),
    () => readBusReplicaLag(status, names),
  );
  const timer = setInterval(() => void observed.observe(), OBSERVE_MS);
  timer.unref();
  void observed.observe();
  const metrics = busPublisherMetrics(() => observed.view());
  // lockstep_build_info (the histograms stay empty: nothing is applied here).
  new SidecarHistograms(origin.version).register(metrics);
  const endpoints = await serveEndpoints(config.http.host, config.http.port, {
    readiness: () => busPublisherReadiness(run.publisher?.snapshot() ?? null, run.stopping),
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
    status,
  });
  return {
    host: endpoints.host,
    port: endpoints.port,
    close: async () => {
      clearInterval(timer);
      await endpoints.close();
      await store.close();
    },
  };
}

/** What is read every few seconds: the slot, the replicas, and while active the in-doubt gids. */
class Observed {
  slot: SlotHealth | null = null;
  /** Null while unknown: only the active coordinator lists them, and a failed listing tells nothing. */
  private inDoubt: { count: number; oldestSeconds: number } | null = null;
  private replicas: BusReplicaReading[] | null = null;
  /** One observation at a time: a frozen agent or primary must not pile them up. */
  private running = false;
  /** The same for the replicas, read on their own: a slow bus must not delay the slot. */
  private readingReplicas = false;

  constructor(
    private readonly run: BusRunState,
    private readonly readSlot: () => Promise<SlotHealth | null>,
    private readonly readReplicas: () => Promise<BusReplicaReading[]>,
  ) {}

  async observe(): Promise<void> {
    void this.observeReplicas();
    if (this.running || this.run.stopping) return;
    this.running = true;
    try {
      // The slot first and on its own: an agent slow to list its gids must not delay its loss.
      this.slot = await this.readSlot().catch(() => this.slot);
      const { publisher, rounds } = this.run;
      // A count kept from before a failed listing or a lost role would be stale: none is shown.
      this.inDoubt =
        rounds && publisher?.snapshot().role === 'active'
          ? await rounds.coordinator.inDoubt().catch(() => null)
          : null;
    } finally {
      this.running = false;
    }
  }

  private async observeReplicas(): Promise<void> {
    if (this.readingReplicas || this.run.stopping) return;
    this.readingReplicas = true;
    try {
      // Bounded, and never rejects: a bus that does not answer leaves them unreported.
      this.replicas = await this.readReplicas();
    } finally {
      this.readingReplicas = false;
    }
  }

  view(): BusPublisherView {
    const { publisher, rounds } = this.run;
    return {
      publisher: publisher?.snapshot() ?? null,
      slot: this.slot,
      twoPhase: rounds?.coordinator.status() ?? {
        roundsCommitted: 0,
        roundsAborted: 0,
        held: null,
      },
      inDoubt: this.inDoubt,
      replicas: this.replicas,
    };
  }
}
