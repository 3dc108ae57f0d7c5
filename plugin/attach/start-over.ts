import { DecisionLog } from '../../adapters/postgres/decision-log.js';
import { connectNode } from '../../adapters/postgres/node-connection.js';
import { dropReplicationSlot } from '../../adapters/postgres/replication-slot.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { recoverPrepared } from '../coordinator/recover-prepared.js';
import { preparedTransactionNodes } from '../coordinator/run-recovery.js';
import { LockstepError } from '../lockstep-error.js';

/**
 * `attach --resync all`, before anything is emptied: the stream's rounds left
 * prepared are finished by the decision log (their row locks would block the
 * reset), a migration still in doubt on a replica stops it (its schema change
 * must land first), and the old slot is dropped — lost or not — so attach
 * creates a new one whose snapshot every replica is copied from, at version 0.
 * The caller holds the coordinator lock: no sidecar decides meanwhile.
 */
export async function prepareStartOver(config: LockstepConfig): Promise<void> {
  const nodes = preparedTransactionNodes(config);
  // Unfenced: the coordinator lock held by the caller keeps every sidecar from deciding.
  const decisions = new DecisionLog(config.primary, config.slot);
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
    for (const replica of config.replicas) {
      const left = await nodes.get(replica.name)?.list(config.slot);
      const gid = left?.[0]?.gid;
      if (gid)
        throw new LockstepError({
          node: replica.name,
          problem: `a migration is in doubt there (${gid})`,
          fix: 'run lockstep recover once no lockstep migrate runs, then this command again (nothing was emptied)',
        });
    }
  } finally {
    await decisions.close();
    for (const node of nodes.values()) await node.close();
  }
  const primary = await connectNode('primary', config.primary);
  try {
    await dropReplicationSlot(primary, config.slot);
  } finally {
    await primary.end();
  }
}
