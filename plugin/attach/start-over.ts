import type { LockstepConfig } from '../config/config-schema.js';
import { recoverPrepared } from '../coordinator/recover-prepared.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { type AttachCluster, onPrimaryStep } from './attach-cluster.js';

/**
 * `attach --resync all`, before anything is marked or emptied: the stream's
 * rounds left prepared are finished by the decision log (their row locks
 * would block the reset), and a migration still in doubt on any node stops
 * it (its schema change must land first, and a transaction prepared on the
 * primary would hold the new slot's creation for ever). The caller holds the
 * coordinator lock: no sidecar decides meanwhile.
 */
export async function checkStartOver(
  cluster: AttachCluster,
  config: LockstepConfig,
): Promise<void> {
  const nodes = cluster.phaseTwoNodes(config);
  // Unfenced: the coordinator lock held by the caller keeps every sidecar from deciding.
  const decisions = cluster.decisionLog(config.primary, config.slot);
  try {
    const report = await recoverPrepared(config.slot, [...nodes.values()], decisions, {
      kinds: ['stream'],
    });
    const failed = report.failed[0];
    if (failed)
      throw new LockstepError({
        node: failed.node,
        problem: `cannot finish lockstep's prepared transactions there: ${failed.error}`,
        fix: 'check that node is up and run the command again (nothing was emptied)',
      });
    // The primary too: a migration prepared there would hold the new slot's creation for ever.
    for (const [node, transactions] of nodes) {
      const gid = (await transactions.list(config.slot))[0]?.gid;
      if (gid)
        throw new LockstepError({
          node,
          problem: `a migration is in doubt there (${gid})`,
          fix: 'run lockstep recover once no lockstep migrate runs, then this command again (nothing was emptied)',
        });
    }
  } finally {
    await decisions.close();
    for (const node of nodes.values()) await node.close();
  }
}

/** Drops the old slot (lost or not): attach then creates the new one. */
export async function dropOldSlot(cluster: AttachCluster, config: LockstepConfig): Promise<void> {
  const step = {
    name: `dropping the old slot "${config.slot}" (the replicas are copied anew)`,
    fix: 'run lockstep attach again',
  };
  await onPrimaryStep(cluster, config, step, (primary) => primary.slots.drop(config.slot));
}
