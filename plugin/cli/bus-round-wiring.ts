import type { Logger } from 'pino';
import { coordinatorRoundTransport } from '../../adapters/nats/agent-round-transport.js';
import type { BusSigner } from '../../adapters/nats/bus-signing.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { NatsPhaseTwoNode } from '../../adapters/nats/nats-phase-two-node.js';
import {
  type AgentAddress,
  NatsRoundParticipant,
} from '../../adapters/nats/nats-round-participant.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import type { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { BusSettings } from '../ports/packet-bus.js';
import { BusRounds } from '../sidecar/bus-rounds.js';
import { exitOnBusLost } from '../support/exit-on-bus-lost.js';
import { untilReachable } from '../support/until-reachable.js';

/**
 * Two-phase rounds of `lockstep run` with `bus`: one participant and one
 * phase-two node per configured replica, each its agent over NATS requests,
 * fenced by the publisher's coordinator lock.
 */
export async function createBusRounds(
  config: LockstepConfig,
  { bus, signer }: { readonly bus: BusSettings; readonly signer: BusSigner },
  lock: StreamLock,
  log: Logger,
  /** Whether the publisher is paused (made after the rounds: read late). */
  paused: () => boolean,
  fault?: FaultHook,
): Promise<BusRounds> {
  // NATS restarting as the publisher starts is waited for, as its primary is.
  const nc = await untilReachable(
    () => connectBus(bus, `lockstep-coordinator-${config.slot}`, { watch: exitOnBusLost(log) }),
    { node: 'bus', event: 'bus-unavailable', message: 'cannot reach the bus: retrying' },
    log,
  );
  const epoch = () => (lock.held ? lock.epoch : null);
  const { voteTimeoutMs } = config.twoPhase;
  const timeouts = {
    // Beyond the round's vote deadline (voteTimeoutMs per batch.maxRows rows): the driver's decides first.
    prepareMs: config.applyTimeoutMs,
    deltaMs: config.applyTimeoutMs,
    phaseTwoMs: voteTimeoutMs,
  };
  const address = (replica: string): AgentAddress => ({
    nc,
    slot: config.slot,
    replica,
    epoch,
    timeouts,
    signer,
  });
  const names = config.replicas.map((r) => r.name);
  const transport = coordinatorRoundTransport(nc, config.slot, signer);
  return new BusRounds({
    stream: config.slot,
    participants: names.map((name) => new NatsRoundParticipant(address(name))),
    nodes: new Map(names.map((name) => [name, new NatsPhaseTwoNode(address(name))])),
    decisions: new DecisionLog(config.primary, config.slot, epoch, config.controlTimeoutMs),
    options: {
      voteTimeoutMs,
      deltaTimeoutMs: config.applyTimeoutMs,
      batchRows: config.batch.maxRows,
      retryInitialMs: config.retry.initialMs,
      retryMaxMs: config.retry.maxMs,
      recoveryIntervalMs: config.twoPhase.recoveryIntervalMs,
    },
    log,
    fault,
    epoch,
    paused,
    serve: (handlers) => transport.serve(handlers),
    close: () => nc.close(),
  });
}
