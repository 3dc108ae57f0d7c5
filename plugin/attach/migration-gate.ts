import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { StreamLockPort } from '../ports/stream-lock.js';
import { sleep } from '../support/sleep.js';
import type { StepReporter } from './attach-progress.js';

/** How long a copy waits for a running migrate/exec to finish before its snapshot (a round's own bound). */
const MIGRATION_WAIT_MS = 600_000;

/**
 * Waits (bounded) until no `lockstep migrate`/`exec` of the stream runs: takes
 * its migrate lock once, and lets it go. Called before a copy's snapshot,
 * once the copied replicas are known to the checks a migration makes with the
 * lock (the sidecar's status rows, the join holds, no position). A migration
 * that passed those checks before, and so left the replicas out of its round,
 * has ended: committed on the primary, it is in the snapshot. One that takes
 * the lock after sees the replicas and is refused. Without this, one could
 * start its primary transaction after the snapshot: the copy would lack it,
 * and its marker, later in the stream, would only advance their version.
 * Only tried, never waited on in Postgres, and not kept over the snapshot (a
 * long transaction on the primary delays that): the sidecar's recovery only
 * tries it too, so neither blocks the other.
 */
export async function awaitMigrationInFlight(
  cluster: LockstepCluster,
  config: LockstepConfig,
  step: StepReporter,
): Promise<void> {
  const lock = cluster.streamLock(config.primary, config.slot, 'migrate');
  try {
    if (await noMigration(lock)) return;
    step('waiting for a running migration to finish before the snapshot', {
      stream: config.slot,
    });
    for (const deadline = Date.now() + MIGRATION_WAIT_MS; !(await noMigration(lock)); ) {
      if (Date.now() > deadline) throw migrationInFlight(config);
      await sleep(500);
    }
  } finally {
    await lock.release();
  }
}

/**
 * The migrate lock taken, and no migration's primary transaction in flight:
 * one that lost the lock (its session ended) may still prepare and commit,
 * which a snapshot now would miss. (It fails instead if it finds the lock
 * lost before it marked itself in flight: migrate-round-fence.ts.)
 */
async function noMigration(lock: StreamLockPort): Promise<boolean> {
  if (!(await lock.tryAcquire())) return false;
  if (!(await lock.migrationInFlight())) return true;
  await lock.release();
  return false;
}

function migrationInFlight(config: LockstepConfig): LockstepError {
  return new LockstepError({
    node: 'primary',
    problem: `a lockstep migrate or exec for stream "${config.slot}" held the migrate lock for over ${MIGRATION_WAIT_MS / 1000} s: the copy's snapshot is not taken while a migration runs (the copy would lack it, the replica would still get its marker)`,
    fix: 'let the migration finish or stop it (lockstep status; a stuck or prepared one: lockstep recover), then run lockstep attach again',
  });
}
