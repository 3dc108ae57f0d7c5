import type { Logger } from 'pino';
import { openPacketLog } from '../../adapters/nats/nats-packet-log.js';
import { PgReplicaTarget } from '../../adapters/postgres/apply/replica-target.js';
import { SharedBatchPlans } from '../../adapters/postgres/apply/shared-batch-plans.js';
import {
  connectBounded,
  cutLockstepSessions,
  endClient,
  lockWaitWithin,
} from '../../adapters/postgres/connection/node-connection.js';
import { controlDbOn } from '../../adapters/postgres/control/control-schema.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import {
  PreparedTransactions,
  preparedTransactionNodes,
} from '../../adapters/postgres/control/prepared-transactions.js';
import { StatusStore } from '../../adapters/postgres/control/status-store.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { PauseListener } from '../../adapters/postgres/control/stream-pause.js';
import { PgStreamsStore } from '../../adapters/postgres/control/streams-store.js';
import { refreshControlEvents } from '../../adapters/postgres/setup/ddl-capture.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { advanceSequences, primarySequences } from '../../adapters/postgres/setup/sequence-sync.js';
import { PgoutputSource } from '../../adapters/postgres/source/pgoutput-source.js';
import { type AttachProgress, attach } from '../attach/attach.js';
import { serverSyncIntervalMs } from '../config/bus-settings.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { type FaultHook, faultAt, parseFaultSetting } from '../coordinator/fault-point.js';
import type { BusSettings } from '../ports/packet-bus.js';
import { PrimaryStream } from '../primary/primary-stream.js';
import { phasePolicy, type ResumePoint, ZERO_LSN } from '../protocol/index.js';
import type { ReplicaAgentOptions } from '../replica/replica-agent.js';
import { exitOnBusLost } from '../support/exit-on-bus-lost.js';
import { BusPublisher, type BusPublisherParts } from './bus-publisher.js';
import { packetCounter } from './packet-count.js';
import { sequenceCopier } from './sequence-copier.js';
import { Sidecar, type SidecarParts, type SidecarTwoPhase } from './sidecar.js';
import type { SidecarObserver } from './sidecar-histograms.js';

/** Attach progress as log lines (the sidecar's own resyncs). */
function quietProgress(log: Logger): AttachProgress {
  return {
    step: (message, fields) =>
      log.info({ ...fields, step: message, event: 'resync-step' }, 'resync step'),
    warn: (message, fields) =>
      log.warn({ ...fields, step: message, event: 'resync-warning' }, 'resync step failed'),
    table: (replica, table, rows, done) => {
      if (done) log.info({ replica, table, rows, event: 'table-copied' }, 'table copied');
    },
  };
}

/**
 * `LOCKSTEP_FAULT=after-prepare:1` (or `after-decision`, `after-commit:2`, with
 * `:cut` at the end to cut lockstep's connections to every node instead): at
 * that point of a round the process kills itself with SIGKILL. For fault tests
 * only; unset in production.
 */
export function faultFromEnvironment(config: LockstepConfig): FaultHook | undefined {
  const text = process.env.LOCKSTEP_FAULT;
  if (!text) return undefined;
  return faultAt(parseFaultSetting(text), (action) => {
    if (action === 'kill') process.kill(process.pid, 'SIGKILL');
    else if (action === 'stop') process.kill(process.pid, 'SIGSTOP');
    else if (action === 'fail') throw new Error('injected fault (LOCKSTEP_FAULT)');
    else for (const node of configNodes(config)) void cutLockstepSessions(node.url);
  });
}

/** Extra wiring for tests, and the configuration as it changes while running. */
export interface SidecarExtras {
  /** Called at the named points of every round. */
  readonly fault?: FaultHook;
  /** Told how long batches and rounds take (the metrics' histograms). */
  readonly observer?: SidecarObserver;
  /** The configuration in force, replaced when a reload adds or removes replicas (what reads it sees the new one). */
  readonly live?: LiveConfig;
}

/** The configuration a running sidecar works with: its replicas change on reload, nothing else does. */
export class LiveConfig {
  /** Replicas in step apply the same batches: each batch is compacted and encoded once for all. */
  readonly plans: SharedBatchPlans;

  constructor(public current: LockstepConfig) {
    this.plans = new SharedBatchPlans(current.replicas.length);
  }
}

/** What a replica needs in a sidecar: its apply target and its phase-two node. */
export function replicaParts(live: LiveConfig, replica: ReplicaConfig, log?: Logger) {
  const config = live.current;
  return {
    target: new PgReplicaTarget(replica.name, replica.url, config.slot, config.conflicts, {
      participantTimeoutMs: config.twoPhase.voteTimeoutMs,
      applyTimeoutMs: config.applyTimeoutMs,
      plans: live.plans,
      note: (message, fields) => log?.info(fields, message),
      runsCapturedDdl: config.twoPhase.captureDdl,
    }),
    node: new PreparedTransactions(replica.name, replica.url, config.controlTimeoutMs),
  };
}

/** Builds the sidecar for a configuration: the primary stream, a target per replica, the status store, the coordinator. */
export function createSidecar(
  config: LockstepConfig,
  log: Logger,
  extras: SidecarExtras = {},
): Sidecar {
  const live = extras.live ?? new LiveConfig(config);
  const lock = new StreamLock(config.primary, config.slot, 'coordinator', config.controlTimeoutMs);
  return new Sidecar({
    observer: extras.observer,
    openStream: streamOpener(config, log),
    targets: config.replicas.map((r) => replicaParts(live, r, log).target),
    stream: config.slot,
    sequenceSyncMs: config.sequenceSyncMs,
    syncSequences: sequenceCopier({
      readPrimary: () =>
        primarySequences(config.primary, config.publication, config.controlTimeoutMs),
      advance: (url, values) => advanceSequences(url, values, config.controlTimeoutMs),
      replicas: () => live.current.replicas,
      log,
    }),
    lock,
    twoPhase: twoPhaseParts(config, lock, extras.fault),
    status: new StatusStore(config.primary, config.slot, config.controlTimeoutMs),
    pauses: new PauseListener(config.primary, config.slot),
    log,
    agent: replicaAgentOptions(config),
    windowChanges: config.windowChanges,
    maxLagBytes: config.maxLagBytes,
    resync: config.resync === 'auto' ? autoResync(live, lock, log) : undefined,
  });
}

/** Builds `lockstep run` with `bus`: the primary stream published to the bus, fenced by the coordinator lock. */
export function createBusPublisher(
  config: LockstepConfig,
  bus: BusSettings,
  log: Logger,
  fault?: FaultHook,
  // Two-phase rounds over the bus share the publisher's coordinator lock (their fencing epoch).
  rounds: Pick<BusPublisherParts, 'onTwoPhasePacket'> & { lock?: StreamLock } = {},
): BusPublisher {
  const status = new StatusStore(config.primary, config.slot, config.controlTimeoutMs);
  const openStream = streamOpener(config, log);
  return new BusPublisher({
    onTwoPhasePacket: rounds.onTwoPhasePacket,
    openStream,
    // Acknowledges nothing: the slot stays where it is while its WAL is counted.
    packetsBetween: packetCounter((resume) => openStream(resume, ZERO_LSN)),
    openLog: () => openPacketLog(bus, `lockstep-publisher-${config.slot}`, exitOnBusLost(log)),
    serverSyncIntervalMs: serverSyncIntervalMs(config.bus),
    startPoint: () => attachPoint(config),
    slotConfirmedLsn: () => status.slotConfirmedLsn(),
    pausedSince: () => status.pausedSince(),
    pauses: new PauseListener(config.primary, config.slot),
    lock:
      rounds.lock ??
      new StreamLock(config.primary, config.slot, 'coordinator', config.controlTimeoutMs),
    log,
    fault,
    recordHead: ({ version, lsn, commitTime }) =>
      status.write([], { version, lsn, commitTime }, { durable: true }),
    close: () => status.close(),
  });
}

/**
 * Where numbering goes on while the bus holds no packet: the head the
 * publisher recorded (retention emptied the bus), else attach's point
 * (version 0 at the slot's start); null when not attached.
 */
async function attachPoint(config: LockstepConfig): Promise<ResumePoint | null> {
  const client = await connectBounded(
    'primary',
    config.primary,
    'lockstep-status',
    config.controlTimeoutMs,
    lockWaitWithin(config.controlTimeoutMs),
  );
  try {
    const streams = new PgStreamsStore(controlDbOn(client));
    const lsn = await streams.startLsn(config.slot);
    if (!lsn) return null;
    const head = await streams.head(config.slot);
    return head?.lsn && head.version > 0
      ? { version: head.version, lsn: head.lsn }
      : { version: 0, lsn };
  } finally {
    await endClient(client);
  }
}

/** Opens the primary stream from a resume point: a fresh replication connection each time. */
function streamOpener(config: LockstepConfig, log: Logger): SidecarParts['openStream'] {
  const decidePhase = phasePolicy(config.twoPhase);
  return async (resume, durable) => {
    // Control events must be published before anything streams (no stream without them).
    await refreshControlEvents(
      config.primary,
      config.publication,
      config.twoPhase.captureDdl,
      config.slot,
      config.controlTimeoutMs,
    );
    const source = new PgoutputSource({
      url: config.primary,
      slot: config.slot,
      publication: config.publication,
      durableLsn: durable,
      decodingWorkMem: config.decodingWorkMem,
    });
    const stream = new PrimaryStream(source, {
      resume,
      decidePhase,
      captureDdl: config.twoPhase.captureDdl,
      onIgnored: (ignored) =>
        log.warn(
          ignored,
          ignored.reason === 'forged'
            ? 'forged control message ignored'
            : 'captured DDL ignored: captureDdl is off',
        ),
      // Decoded but not yet in the window: one batch's worth keeps the pump fed.
      maxBufferedChanges: Math.min(config.batch.maxRows, config.windowChanges),
    });
    await stream.start();
    return stream;
  };
}

/** What two-phase rounds need: phase two per node, the fenced decision log, the migrate lock. */
function twoPhaseParts(
  config: LockstepConfig,
  lock: StreamLock,
  fault: FaultHook | undefined,
): SidecarTwoPhase {
  return {
    nodes: preparedTransactionNodes(config),
    // Fenced: written only while this process's activation epoch is the stream's.
    decisions: new DecisionLog(
      config.primary,
      config.slot,
      () => (lock.held ? lock.epoch : null),
      config.controlTimeoutMs,
    ),
    options: {
      voteTimeoutMs: config.twoPhase.voteTimeoutMs,
      // A replica behind the round catches up through its apply loop, each step bounded by this.
      deltaTimeoutMs: config.applyTimeoutMs,
      batchRows: config.batch.maxRows,
      retryInitialMs: config.retry.initialMs,
      retryMaxMs: config.retry.maxMs,
      recoveryIntervalMs: config.twoPhase.recoveryIntervalMs,
    },
    fault,
    migrateLock: new StreamLock(config.primary, config.slot, 'migrate', config.controlTimeoutMs),
  };
}

/** resync: "auto" — attach copies a stale replica anew, fenced by this sidecar's lock. */
function autoResync(
  live: LiveConfig,
  lock: StreamLock,
  log: Logger,
): NonNullable<SidecarParts['resync']> {
  return async (replica, stale) => {
    const config = live.current;
    const url = config.replicas.find((r) => r.name === replica)?.url;
    await attach(postgresCluster(config), config, quietProgress(log), {
      resync: [replica],
      sidecarRunsResync: true,
      holder: {
        epoch: () => (lock.held ? lock.epoch : null),
        // Removed from the configuration meanwhile, or its URL changed (replaced: the
        // database copied into is no longer the replica): nothing more is copied or placed.
        verify: async () =>
          live.current.replicas.some((r) => r.name === replica && r.url === url) &&
          (await lock.verify()),
      },
      stale,
    });
  };
}

/** How every replica machine applies, in process or in `lockstep agent`: from the configuration. */
export function replicaAgentOptions(config: LockstepConfig): ReplicaAgentOptions {
  return {
    batchRows: config.batch.maxRows,
    batchMs: config.batch.maxMs,
    retryInitialMs: config.retry.initialMs,
    retryMaxMs: config.retry.maxMs,
    applyTimeoutMs: config.applyTimeoutMs,
  };
}
