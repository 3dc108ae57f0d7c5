import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { ResyncGuardPort } from '../ports/resync-guard.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';
import { onPrimaryStep, onReplica } from './attach-cluster.js';

/**
 * Fails closed should the slot have been confirmed past a joined replica's
 * position (a sidecar that did not know it ran meanwhile): its position is
 * taken back, so it is not attached, and attach can be run again. The slot
 * is read before the position: a position only grows, so what is found is real.
 */
export async function verifyJoined(
  cluster: LockstepCluster,
  config: LockstepConfig,
  guards: readonly ResyncGuardPort[],
): Promise<void> {
  const step = {
    name: "checking that the slot still holds the joined replicas' WAL (nothing is attached unchecked)",
    fix: 'run lockstep attach again (it copies them again)',
  };
  const read = (primary: PrimarySession) => joinedOnPrimary(primary, config, guards);
  // Read once more before giving up: what fails from here takes the copies back.
  const { confirmed, stale } = await onPrimaryStep(cluster, config, step, read)
    .catch(() => onPrimaryStep(cluster, config, step, read))
    .catch((error: unknown) => takeBack(config, guards, error));
  for (const guard of guards)
    if (stale.has(guard.replica)) {
      await guard.unplace(config.slot);
      throw new LockstepError({
        node: guard.replica,
        problem:
          'the sidecar marked it stale during the copy: the WAL held for it passed maxLagBytes, so its starting point may be gone',
        fix: 'run lockstep attach again (a larger maxLagBytes, or a quieter moment, gives the copy more room)',
      });
    }
  if (!confirmed) return;
  for (const guard of guards) {
    const replica = config.replicas.find((r) => r.name === guard.replica);
    if (!replica) continue;
    const lsn = (await onReplica(cluster, replica, (s) => s.positions.read(config.slot)))?.lsn;
    if (lsn && lsnToBigInt(lsn) + 1n < lsnToBigInt(confirmed)) {
      await guard.unplace(config.slot);
      throw new LockstepError({
        node: replica.name,
        problem: `while it was copied the slot was confirmed past its starting point (${lsn} < ${confirmed}): a lockstep run that does not have it in its configuration confirmed it`,
        fix: 'give every lockstep run of this stream the configuration naming it (SIGHUP or restart), then run lockstep attach again',
      });
    }
  }
}

/**
 * Takes every joined replica's position back after the check could not be
 * made (unchecked is not attached: left placed, no later attach would check
 * it), then throws `error`, naming any replica that could not be taken back.
 */
async function takeBack(
  config: LockstepConfig,
  guards: readonly ResyncGuardPort[],
  error: unknown,
): Promise<never> {
  const results = await Promise.allSettled(guards.map((g) => g.unplace(config.slot)));
  const kept = guards.filter((_, i) => results[i]?.status === 'rejected').map((g) => g.replica);
  if (kept.length === 0 || !(error instanceof LockstepError)) throw error;
  throw new LockstepError({
    node: error.node,
    setting: error.setting,
    problem: `${error.problem}; ${kept.join(', ')} could not be taken back and stay placed unchecked`,
    fix: `${error.fix}; then lockstep attach --resync ${kept.join(' ')} (they may lack what the slot confirmed meanwhile)`,
    cause: error,
  });
}

/** The slot's confirmed position, and which of the joined replicas were marked stale during the copy. */
async function joinedOnPrimary(
  primary: PrimarySession,
  config: LockstepConfig,
  guards: readonly ResyncGuardPort[],
): Promise<{ confirmed: Lsn | null; stale: Set<string> }> {
  return {
    confirmed: (await primary.slots.read(config.slot))?.confirmedFlushLsn ?? null,
    // Marked stale during the copy (it held WAL past maxLagBytes): the sidecar let its WAL go.
    stale: new Set(
      await primary.replicaStatus.staleReplicas(
        config.slot,
        guards.map((g) => g.replica),
      ),
    ),
  };
}
