import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { onPrimary, onReplica } from './attach-cluster.js';
import type { AttachProgress } from './attach-progress.js';
import { primaryCommandSession, primaryStepError } from './node-step.js';

/**
 * Gives each replica copied by this attach (a first attach, a joining
 * replica, a resync) the primary's migration history rows it lacks: its
 * tables were just checked against the primary's and copied from it, so it
 * has what the migrations made of them, and `status` would otherwise report
 * the migrations that ran before it was copied as lacking. A replica that
 * was not copied now keeps its history as it is: attach never hides a
 * migration it lacks. The primary's history is read on a session bounded
 * by applyTimeoutMs: a primary frozen after the copies fails attach naming
 * it (run again, attach resumes) instead of hanging it.
 */
export async function copyMigrationHistory(
  cluster: LockstepCluster,
  config: LockstepConfig,
  copied: ReadonlySet<string>,
  progress: AttachProgress,
): Promise<void> {
  const replicas = config.replicas.filter((r) => copied.has(r.name));
  if (replicas.length === 0) return;
  const history = await onPrimary(
    cluster,
    config.primary,
    (primary) => primary.setup.migrationHistory(),
    primaryCommandSession(config, 'lockstep'),
  ).catch((error: unknown) => {
    throw primaryStepError(
      'reading the migration history (the tables are copied)',
      config.applyTimeoutMs,
      error,
      'run lockstep attach again (it resumes)',
    );
  });
  if (history.length === 0) return;
  for (const replica of replicas) {
    const added = await onReplica(cluster, replica, (session) =>
      session.setup.adoptMigrationHistory(config.slot, history),
    );
    if (added.length > 0)
      progress.step('copied the migration history', {
        replica: replica.name,
        migrations: added.length,
      });
  }
}
