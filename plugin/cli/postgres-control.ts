import {
  connectBounded,
  endClient,
  lockWaitWithin,
} from '../../adapters/postgres/connection/node-connection.js';
import { migrateControlSchemas } from '../../adapters/postgres/control/control-schema.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { MigrationSession } from '../../adapters/postgres/control/migration-session.js';
import { preparedTransactionNodes } from '../../adapters/postgres/control/prepared-transactions.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { readPause } from '../../adapters/postgres/control/stream-pause.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { onPrimary } from '../attach/attach-cluster.js';
import { unplacedReplicas } from '../attach/join.js';
import {
  isLockWait,
  isUnanswered,
  primaryCommandSession,
  primaryStepError,
} from '../attach/node-step.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { RecoveryWiring } from '../coordinator/run-recovery.js';
import type { MigrateWiring } from '../migrate/run-migrate.js';

/** The application_name of the checks' sessions (what a DBA sees in pg_stat_activity). */
const CHECKS = 'lockstep-migrate-checks';

/**
 * A check made before anything is prepared: its session on the primary has
 * applyTimeoutMs for each query, as every operator command's, so a frozen
 * primary fails it, named (unreachable, exit 3), instead of hanging it.
 */
export async function primaryCheck<T>(
  config: LockstepConfig,
  step: string,
  read: () => Promise<T>,
) {
  try {
    return await read();
  } catch (error) {
    if (!isUnanswered(error) && !isLockWait(error)) throw error;
    throw primaryStepError(
      `${step} (nothing prepared yet)`,
      config.applyTimeoutMs,
      error,
      'run this again',
    );
  }
}

/** Since when the stream is paused, read on a bounded connection of its own. */
function pausedSince(config: LockstepConfig): Promise<Date | null> {
  const step = `reading whether stream "${config.slot}" is paused`;
  return primaryCheck(config, step, async () => {
    const ms = config.applyTimeoutMs;
    const primary = await connectBounded('primary', config.primary, CHECKS, ms, lockWaitWithin(ms));
    try {
      return (await readPause(primary, config.slot)) ?? null;
    } finally {
      await endClient(primary);
    }
  });
}

/**
 * Every replica with a row in the primary's \`lockstep.replica_status\`: the
 * active sidecar writes one for each replica it serves and deletes it when
 * the replica is removed. Stale and not-attached ones count too: with the
 * sidecar's own configuration the command is refused for them anyway (no
 * barrier reached, no position), so an older file is never let do more.
 * And every replica an attach is joining.
 */
async function servedReplicas(config: LockstepConfig): Promise<string[]> {
  const step = `reading the replicas stream "${config.slot}" serves (lockstep.replica_status, lockstep.join_holds)`;
  const [notes, holds] = await primaryCheck(config, step, () =>
    onPrimary(
      postgresCluster(config),
      config.primary,
      (primary) =>
        Promise.all([
          primary.replicaStatus.notes(config.slot),
          primary.joinHolds.read(config.slot),
        ]),
      primaryCommandSession(config, CHECKS),
    ),
  );
  return [...new Set([...notes.map((n) => n.replica), ...holds.map((h) => h.replica)])];
}

/**
 * The replicas an attach is joining now (their join holds): with no sidecar
 * running, none reports them, yet their copy's snapshot may predate a round
 * that starts now, whose marker they would meet once placed.
 */
export async function joiningReplicas(config: LockstepConfig): Promise<string[]> {
  const step = `reading the replicas joining stream "${config.slot}" (lockstep.join_holds)`;
  const holds = await primaryCheck(config, step, () =>
    onPrimary(
      postgresCluster(config),
      config.primary,
      (primary) => primary.joinHolds.read(config.slot),
      primaryCommandSession(config, CHECKS),
    ),
  );
  return holds.map((h) => h.replica);
}

/**
 * The Postgres adapters behind `recover`, `migrate` and `exec`, for one
 * configuration (`fault`: the tests' fault points, LOCKSTEP_FAULT).
 */
export function postgresControl(
  config: LockstepConfig,
  fault?: FaultHook,
): RecoveryWiring & MigrateWiring {
  // One per command: the primary's migration transaction proves this very lock still held.
  const migrateLock = new StreamLock(
    config.primary,
    config.slot,
    'migrate',
    config.controlTimeoutMs,
  );
  // Each primary barrier session of this command counts, so `barrier:2` fires at the second.
  let barriers = 0;
  return {
    streamLock: (purpose) =>
      purpose === 'migrate'
        ? migrateLock
        : new StreamLock(config.primary, config.slot, purpose, config.controlTimeoutMs),
    decisionLog: (epoch) =>
      new DecisionLog(config.primary, config.slot, epoch, config.controlTimeoutMs),
    phaseTwoNodes: () => preparedTransactionNodes(config),
    migrationSession: (node, url) =>
      // The history read, a replica's position reads and the barrier have applyTimeoutMs.
      node === 'primary'
        ? new MigrationSession(node, url, config.slot, config.applyTimeoutMs, migrateLock, () =>
            fault?.('barrier', ++barriers),
          )
        : new MigrationSession(node, url, config.slot, config.applyTimeoutMs),
    migrateControlSchemas: (nodes) => migrateControlSchemas(nodes, config.controlTimeoutMs),
    pausedSince: () => pausedSince(config),
    unplacedReplicas: () => unplacedReplicas(postgresCluster(config), config),
    servedReplicas: () => servedReplicas(config),
  };
}
