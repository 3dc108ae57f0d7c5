import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { agentRoundTransport } from '../../adapters/nats/agent-round-transport.js';
import { loadBusVerifier } from '../../adapters/nats/bus-signing.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { NatsPacketReader } from '../../adapters/nats/packet-consumer.js';
import { PgReplicaTarget } from '../../adapters/postgres/apply/replica-target.js';
import { SharedBatchPlans } from '../../adapters/postgres/apply/shared-batch-plans.js';
import { upgradeControlSchema } from '../../adapters/postgres/control/control-schema.js';
import { MigrationSession } from '../../adapters/postgres/control/migration-session.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { ReplicaAgentLock } from '../../adapters/postgres/control/replica-agent-lock.js';
import { AgentMigrations } from '../agent/agent-migrations.js';
import { BusAgent } from '../agent/bus-agent.js';
import { busSettings } from '../config/bus-settings.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import type { BusSettings } from '../ports/packet-bus.js';
import { parseTablePattern } from '../protocol/index.js';
import { replicaAgentOptions } from '../sidecar/create-sidecar.js';
import { createLogger } from '../sidecar/logger.js';
import { exitOnBusLost } from '../support/exit-on-bus-lost.js';
import { untilReachable } from '../support/until-reachable.js';
import { type AgentReporting, startAgentReporting } from './agent-status.js';
import { startSequenceApplying } from './bus-sequence-wiring.js';
import { UsageError } from './exit-codes.js';

/** The flags of `lockstep agent`. */
export interface AgentFlags {
  config?: string;
  replica: string;
}

/**
 * `lockstep agent`: applies one replica's packets from the bus until SIGTERM
 * or SIGINT (exit 0), or until it meets what it cannot get past (exit 1: the
 * bus no longer holds the replica's next packet).
 */
export async function runAgent(flags: AgentFlags): Promise<void> {
  const config = loadConfig(flags.config);
  const replica = agentReplica(config, flags.replica);
  const bus = busSettings(config);
  if (!bus)
    throw new UsageError(
      'lockstep agent reads packets from the bus, and the configuration has no bus',
      'add bus (url of the NATS servers) to the configuration, the same as lockstep run uses',
    );
  // Nothing of the bus is trusted without lockstep run's public key: a missing one stops the start.
  const verifier = loadBusVerifier(bus);
  const log = createLogger(config.log.level);
  let agent: BusAgent | null = null;
  stopOnSignals(replica.name, log, () => agent);
  const nc = await reachReplicaAndBus(replica, bus, config.controlTimeoutMs, log);
  const packets = new NatsPacketReader(nc, bus, { verifier, log });
  let reporting: AgentReporting | null = null;
  const phaseTwo = new PreparedTransactions(replica.name, replica.url, config.controlTimeoutMs);
  agent = new BusAgent({
    target: replicaTarget(config, replica, log),
    packets,
    lock: new ReplicaAgentLock(replica.name, replica.url, config.slot, config.controlTimeoutMs),
    log,
    agent: replicaAgentOptions(config),
    windowChanges: config.windowChanges,
    changed: () => reporting?.changed(),
    rounds: {
      ...agentRoundTransport(nc, config.slot, replica.name, config.twoPhase.voteTimeoutMs, {
        verifier,
        log,
      }),
      stream: config.slot,
      node: phaseTwo,
      recoveryIntervalMs: config.twoPhase.recoveryIntervalMs,
      migrations: new AgentMigrations(
        replica.name,
        new MigrationSession(replica.name, replica.url, config.slot),
        {
          lockTimeoutMs: config.twoPhase.voteTimeoutMs,
          adoptTables: config.tables.map(parseTablePattern),
          // migrate's vote deadline (run-migrate.ts), then one recovery interval.
          patienceMs:
            Math.max(600_000, config.twoPhase.voteTimeoutMs) + config.twoPhase.recoveryIntervalMs,
        },
        log,
      ),
    },
  });
  reporting = await startAgentReporting(nc, bus, config, phaseTwo, agent, log, verifier);
  const sequences = startSequenceApplying(config, bus, nc, replica, log, verifier, agent);
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'internal error');
    process.exit(1);
  });
  try {
    const fatal = await agent.run();
    if (fatal) {
      log.error(
        { replica: replica.name, err: fatal.problem, fix: fatal.fix, event: 'agent-halted' },
        'agent cannot go on',
      );
      throw fatal;
    }
    log.info({ replica: replica.name, event: 'stopped' }, 'stopped');
  } finally {
    await sequences.stop();
    await reporting.close();
    await phaseTwo.close();
    await packets.close();
  }
  // Everything is closed; a backoff timer still pending must not delay the exit.
  process.exit(0);
}

/** SIGTERM and SIGINT stop the agent (an open batch rolls back); before it exists, the process exits 0. */
function stopOnSignals(replica: string, log: Logger, agent: () => BusAgent | null): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => {
      log.info({ signal, replica }, 'stopping: an open batch rolls back');
      const running = agent();
      // Still waiting to start: nothing is open.
      if (!running) process.exit(0);
      // Never take longer than 10 s to exit.
      setTimeout(() => process.exit(0), 9_000).unref();
      running.stop();
    });
}

/** Waits for the replica (its control schema brought up to date) and then the bus to answer. */
async function reachReplicaAndBus(
  replica: ReplicaConfig,
  bus: BusSettings,
  controlTimeoutMs: number,
  log: Logger,
): Promise<NatsConnection> {
  // Only attach upgrades a bus replica's control schema otherwise: its agent, once upgraded, does.
  await untilReachable(
    () => upgradeControlSchema(replica.name, replica.url, controlTimeoutMs),
    {
      node: replica.name,
      event: 'replica-unreachable',
      message: 'cannot reach the replica: retrying',
    },
    log,
  );
  return untilReachable(
    () => connectBus(bus, `lockstep-agent-${replica.name}`, { watch: exitOnBusLost(log) }),
    { node: 'bus', event: 'bus-unavailable', message: 'cannot reach the bus: retrying' },
    log,
  );
}

/** The configured replica named `name`; a usage error (exit 2) when there is none. */
function agentReplica(config: LockstepConfig, name: string): ReplicaConfig {
  const replica = config.replicas.find((r) => r.name === name);
  if (replica) return replica;
  const known = config.replicas.map((r) => r.name).join(', ') || 'none';
  throw new UsageError(
    `no replica named "${name}" in the configuration (replicas: ${known})`,
    'pass --replica with the name of one of the configured replicas',
  );
}

/** The same apply target as the sidecar's, for one replica. */
function replicaTarget(config: LockstepConfig, replica: ReplicaConfig, log: Logger) {
  return new PgReplicaTarget(replica.name, replica.url, config.slot, config.conflicts, {
    participantTimeoutMs: config.twoPhase.voteTimeoutMs,
    applyTimeoutMs: config.applyTimeoutMs,
    plans: new SharedBatchPlans(1),
    note: (message, fields) => log.info(fields, message),
    runsCapturedDdl: config.twoPhase.captureDdl,
  });
}
