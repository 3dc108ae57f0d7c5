import type { Logger } from 'pino';
import { readAllAgentReports } from '../../adapters/nats/agent-status-kv.js';
import { loadBusSigner } from '../../adapters/nats/bus-signing.js';
import { BUS_FAILOVER_MS, connectBus } from '../../adapters/nats/nats-connection.js';
import { NatsMigrationSession } from '../../adapters/nats/nats-migration-session.js';
import { NatsPhaseTwoNode } from '../../adapters/nats/nats-phase-two-node.js';
import type { AgentAddress } from '../../adapters/nats/nats-round-participant.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { readStreamEpoch } from '../../adapters/postgres/control/stream-epoch.js';
import { agentFreshness } from '../agent/agent-status-staleness.js';
import { redactBusUrl } from '../config/bus-settings.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { MigrateWiring } from '../migrate/run-migrate.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { BusSettings } from '../ports/packet-bus.js';
import type { PhaseTwoNode } from '../ports/phase-two-node.js';
import { joiningReplicas, postgresControl, primaryCheck } from './postgres-control.js';

/** How often the stream's epoch is read again while a command runs (ms). */
const EPOCH_REFRESH_MS = 2_000;

/**
 * `migrate` and `exec` with `bus`: the primary as without it, each replica
 * through its agent (prepare, position and phase two as NATS requests). The
 * requests carry the stream's current epoch: an agent refuses one older than
 * the coordinator's it saw (so it is read again while the command runs), and
 * the migrate lock keeps migrations apart.
 */
export async function busMigrateWiring(
  config: LockstepConfig,
  bus: BusSettings,
  log: Logger,
  fault?: FaultHook,
): Promise<MigrateWiring & { close(): Promise<void> }> {
  // Its requests to agents are signed as lockstep run's are: a missing key stops it first.
  const signer = loadBusSigner(bus);
  const base = postgresControl(config, fault);
  // Bounded (applyTimeoutMs), as the other checks: a frozen primary fails it, named (exit 3).
  const readEpoch = () => readStreamEpoch(config.primary, config.slot, config.applyTimeoutMs);
  const step = `reading the epoch of stream "${config.slot}" (lockstep.streams)`;
  let epoch = await primaryCheck(config, step, readEpoch);
  // A coordinator that starts meanwhile raises it: phase two retried after the decision must not be
  // refused for ever. One read at a time, each bounded: a primary that stops answering neither piles
  // up sessions nor keeps the process alive after the command; the last epoch read stays in use.
  let reading = false;
  const refresh = setInterval(() => {
    if (reading) return;
    reading = true;
    void readEpoch()
      .then(
        (now) => {
          epoch = Math.max(epoch, now);
        },
        () => undefined,
      )
      .finally(() => {
        reading = false;
      });
  }, EPOCH_REFRESH_MS);
  refresh.unref();
  const nc = await connectBus(bus, `lockstep-migrate-${config.slot}`);
  const voteMs = Math.max(600_000, config.twoPhase.voteTimeoutMs);
  const address = (replica: string): AgentAddress => ({
    nc,
    slot: config.slot,
    replica,
    epoch: () => epoch,
    timeouts: {
      prepareMs: voteMs,
      deltaMs: config.applyTimeoutMs,
      phaseTwoMs: config.twoPhase.voteTimeoutMs,
    },
    signer,
  });
  // A frozen agent is given up on long before the cap above: after voteTimeoutMs without life, plus
  // the time either side may take to leave a hung NATS server (silence that long is not a frozen agent).
  const liveness = { silenceMs: config.twoPhase.voteTimeoutMs + BUS_FAILOVER_MS, log };
  const sessions = (name: string) => new NatsMigrationSession(address(name), liveness);
  return {
    ...base,
    // The replicas' control schemas are their agents' (attach made them): only the primary's here.
    migrateControlSchemas: (nodes) =>
      base.migrateControlSchemas(nodes.filter((n) => n.name === 'primary')),
    unplacedReplicas: () => unplacedThroughAgents(config.replicas, sessions),
    servedReplicas: async () => [
      ...new Set([...(await liveAgents(bus)), ...(await joiningReplicas(config))]),
    ],
    servedByAgents: true,
    phaseTwoNodes: () =>
      new Map<string, PhaseTwoNode>([
        ['primary', new PreparedTransactions('primary', config.primary, config.controlTimeoutMs)],
        ...config.replicas.map((r): [string, PhaseTwoNode] => [
          r.name,
          new NatsPhaseTwoNode(address(r.name)),
        ]),
      ]),
    migrationSession: (node, url) =>
      node === 'primary' ? base.migrationSession(node, url) : sessions(node),
    vouchWork: true,
    close: async () => {
      clearInterval(refresh);
      await nc.close();
    },
  };
}

/** The replicas whose agent reports no position (an agent that does not answer fails, naming it). */
async function unplacedThroughAgents(
  replicas: ReadonlyArray<{ readonly name: string }>,
  session: (name: string) => NatsMigrationSession,
): Promise<Set<string>> {
  const unplaced = new Set<string>();
  for (const { name } of replicas) {
    if ((await session(name).appliedLsn()) === null) unplaced.add(name);
  }
  return unplaced;
}

/**
 * The replicas whose agent reports to the bus now: those apply the stream's
 * packets. A report older than its staleness bound is not counted — nothing
 * deletes the report of a replica removed with its agent, and counting it
 * would refuse every migration for good.
 */
async function liveAgents(bus: BusSettings, now = new Date()): Promise<string[]> {
  const reports = await readAllAgentReports(bus).catch((error: unknown) => {
    throw agentsUnread(bus, error);
  });
  return [...reports.values()]
    .filter((r) => !agentFreshness(r.record, r.storedAt, now).stale)
    .map((r) => r.record.replica);
}

/** The agents' reports could not be read: the round is not started (it might leave one out). */
function agentsUnread(bus: BusSettings, error: unknown): LockstepError {
  const reason = error instanceof LockstepError ? error.problem : (error as Error).message;
  return new LockstepError({
    node: 'bus',
    // Unreachable (exit 3), as a node that refuses connections.
    setting: 'connection',
    problem: `reading which replicas' agents report to the bus (stream "${bus.stream}", so that no round leaves one out) failed: ${redactBusUrl(reason ?? String(error))}`,
    fix: 'check that the NATS servers in bus.url run with JetStream and keep quorum, then run this again (nothing was prepared)',
    cause: error,
  });
}
