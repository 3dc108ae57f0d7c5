import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Endpoints } from '../../adapters/http/http-endpoints.js';
import type { BusVerifier } from '../../adapters/nats/bus-signing.js';
import { AgentStatusPublisher, type AgentStatusSource } from '../agent/agent-status-publisher.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { BusSettings } from '../ports/packet-bus.js';
import type { PhaseTwoNode } from '../ports/phase-two-node.js';
import type { MigrationReading } from '../protocol/migration-summary.js';
import { isFollowing } from '../protocol/shown-replica-state.js';

/** The agent's status reporting, running. */
export interface AgentReporting {
  /** The replica changed: a report goes out (never waited for). */
  changed(): void;
  /** Sends the last report (bounded) and closes the endpoints. */
  close(): Promise<void>;
}

/** Longest the last report may take when the agent stops (ms). */
const LAST_REPORT_MS = 1_500;
/** Longest the coordinator may take to say whether the stream is paused (ms): one heartbeat's share. */
const PAUSE_ASK_MS = 1_000;

/**
 * Starts `lockstep agent`'s reporting: its status in the agents' KV bucket
 * (with the stream's gids prepared on the replica, as `phaseTwo` lists them,
 * and a summary of its migration history, read right after),
 * and, when `bus.agentHttp.port` is set, /healthz, /readyz, /metrics and
 * /status from the same report.
 */
export async function startAgentReporting(
  nc: NatsConnection,
  bus: BusSettings,
  config: LockstepConfig,
  /** Its phase-two node, which also reads the replica's migration history (same connection). */
  phaseTwo: PhaseTwoNode & { migrationReading(stream: string): Promise<MigrationReading> },
  source: AgentStatusSource,
  log: Logger,
  /** Checks the coordinator's answer on whether the stream is paused. */
  verifier: BusVerifier,
): Promise<AgentReporting> {
  const [{ agentStatusWriter }, { InDoubtLister }, { askStreamPaused }] = await Promise.all([
    import('../../adapters/nats/agent-status-kv.js'),
    import('../agent/agent-status-in-doubt.js'),
    import('../../adapters/nats/agent-round-transport.js'),
  ]);
  const publisher = new AgentStatusPublisher(agentStatusWriter(nc, bus), source, log);
  const lister = new InDoubtLister(
    () => phaseTwo.list(config.slot),
    () => phaseTwo.migrationReading(config.slot),
    ({ inDoubt, migrations }) => {
      publisher.inDoubt = inDoubt;
      publisher.migrations = migrations;
    },
  );
  const askPaused = async () => {
    const paused =
      (await askStreamPaused(nc, config.slot, PAUSE_ASK_MS, { verifier, log })) === true;
    if (paused === publisher.streamPaused) return;
    publisher.streamPaused = paused;
    publisher.changed();
  };
  const listing = setInterval(() => {
    lister.poll();
    void askPaused();
  }, publisher.everyMs);
  listing.unref();
  lister.poll();
  void askPaused();
  publisher.start();
  const endpoints = await serveAgentEndpoints(config, publisher, source, log);
  return {
    changed: () => publisher.changed(),
    close: async () => {
      clearInterval(listing);
      await publisher.stop(LAST_REPORT_MS);
      await endpoints?.close();
    },
  };
}

/** The agent's endpoints, when a port is configured. */
async function serveAgentEndpoints(
  config: LockstepConfig,
  publisher: AgentStatusPublisher,
  source: AgentStatusSource,
  log: Logger,
): Promise<Endpoints | null> {
  const http = config.bus?.agentHttp;
  if (!http?.port) return null;
  const [{ serveEndpoints }, { agentMetrics }] = await Promise.all([
    import('../../adapters/http/http-endpoints.js'),
    import('../agent/agent-status-metrics.js'),
  ]);
  const metrics = agentMetrics(() => ({
    record: source.current ? publisher.latest : null,
    active: source.current !== null,
  }));
  const endpoints = await serveEndpoints(http.host, http.port, {
    readiness: () => {
      const state = source.current?.state ?? 'standby';
      const ready = isFollowing(state);
      return { ready, reasons: ready ? [] : [`replica ${source.replica} is ${state}`] };
    },
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
    status: async () => publisher.latest ?? { replica: source.replica, state: 'standby' },
  });
  log.info(
    { host: endpoints.host, port: endpoints.port, event: 'agent-endpoints' },
    'agent endpoints listening',
  );
  return endpoints;
}
