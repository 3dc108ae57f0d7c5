import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { migrateControlSchemas } from '../../adapters/postgres/control/control-schema.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { MigrationSession } from '../../adapters/postgres/control/migration-session.js';
import { preparedTransactionNodes } from '../../adapters/postgres/control/prepared-transactions.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { readPause } from '../../adapters/postgres/control/stream-pause.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { onPrimary } from '../attach/attach-cluster.js';
import { unplacedReplicas } from '../attach/join.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { RecoveryWiring } from '../coordinator/run-recovery.js';
import type { MigrateWiring } from '../migrate/run-migrate.js';

/** Since when the stream is paused, read on a connection of its own. */
async function pausedSince(config: LockstepConfig): Promise<Date | null> {
  const primary = await connectNode('primary', config.primary);
  try {
    return (await readPause(primary, config.slot)) ?? null;
  } finally {
    await primary.end();
  }
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
  const [notes, holds] = await onPrimary(postgresCluster(), config.primary, (primary) =>
    Promise.all([primary.replicaStatus.notes(config.slot), primary.joinHolds.read(config.slot)]),
  );
  return [...new Set([...notes.map((n) => n.replica), ...holds.map((h) => h.replica)])];
}

/**
 * The replicas an attach is joining now (their join holds): with no sidecar
 * running, none reports them, yet their copy's snapshot may predate a round
 * that starts now, whose marker they would meet once placed.
 */
export async function joiningReplicas(config: LockstepConfig): Promise<string[]> {
  const holds = await onPrimary(postgresCluster(), config.primary, (primary) =>
    primary.joinHolds.read(config.slot),
  );
  return holds.map((h) => h.replica);
}

/** The Postgres adapters behind `recover`, `migrate` and `exec`, for one configuration. */
export function postgresControl(config: LockstepConfig): RecoveryWiring & MigrateWiring {
  return {
    streamLock: (purpose) => new StreamLock(config.primary, config.slot, purpose),
    decisionLog: (epoch) => new DecisionLog(config.primary, config.slot, epoch),
    phaseTwoNodes: () => preparedTransactionNodes(config),
    migrationSession: (node, url) => new MigrationSession(node, url, config.slot),
    migrateControlSchemas,
    pausedSince: () => pausedSince(config),
    unplacedReplicas: () => unplacedReplicas(postgresCluster(), config),
    servedReplicas: () => servedReplicas(config),
  };
}
