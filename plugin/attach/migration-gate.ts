import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { sleep } from '../support/sleep.js';
import type { StepReporter } from './attach-progress.js';

/** How long a copy waits for a running migrate/exec to finish before its snapshot (a round's own bound). */
const MIGRATION_WAIT_MS = 600_000;

/**
 * Runs `takeSnapshot` holding the stream's migrate lock, waiting (bounded)
 * for a running `lockstep migrate`/`exec` to finish first. A migration whose
 * round left the copied replica out (it passed its membership check before
 * the replica was known) would otherwise start its primary transaction after
 * the snapshot: the copy would lack it while its marker, later in the stream,
 * only advances the replica's version. Finished before the snapshot, it is in
 * the copy; one that starts after finds the replica served or unplaced, and
 * is refused. Only tried, never waited on in Postgres: the sidecar's
 * recovery also only tries it, so neither blocks the other.
 */
export async function withoutMigrationInFlight<T>(
  cluster: LockstepCluster,
  config: LockstepConfig,
  step: StepReporter,
  takeSnapshot: () => Promise<T>,
): Promise<T> {
  const lock = cluster.streamLock(config.primary, config.slot, 'migrate');
  try {
    const deadline = Date.now() + MIGRATION_WAIT_MS;
    if (!(await lock.tryAcquire())) {
      step('waiting for a running migration to finish before the snapshot', {
        stream: config.slot,
      });
      while (!(await lock.tryAcquire())) {
        if (Date.now() > deadline) throw migrationInFlight(config);
        await sleep(500);
      }
    }
    return await takeSnapshot();
  } finally {
    await lock.release();
  }
}

function migrationInFlight(config: LockstepConfig): LockstepError {
  return new LockstepError({
    node: 'primary',
    problem: `a lockstep migrate or exec for stream "${config.slot}" held the migrate lock for over ${MIGRATION_WAIT_MS / 1000} s: the copy's snapshot is not taken while a migration runs (the copy would lack it, the replica would still get its marker)`,
    fix: 'let the migration finish or stop it (lockstep status; a stuck one: lockstep recover), then run lockstep attach again',
  });
}
