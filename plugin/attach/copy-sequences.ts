import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { AttachProgress } from './attach-progress.js';
import { nodeStepError } from './node-step.js';

/**
 * Sequence values of the replicated tables, primary to replicas. A primary
 * that fails or stops answering the read, or a replica that cannot be
 * reached, fails attach naming that node.
 */
export async function copySequences(
  cluster: LockstepCluster,
  config: LockstepConfig,
  progress: AttachProgress,
  replicas: ReadonlyArray<{ name: string; url: string }>,
): Promise<void> {
  progress.step('copying sequence values');
  const sequences = await cluster
    .syncSequences(config.primary, config.publication, replicas)
    .catch((error: unknown) => {
      throw nodeStepError(
        'primary',
        'reading the sequence values of the replicated tables',
        'within its control deadline',
        error,
        'run lockstep attach again (it resumes)',
      );
    });
  if (sequences.held.length > 0)
    throw new LockstepError({
      node: 'primary',
      problem: `cannot read sequence values: an open transaction holds ${sequences.held.join(', ')} (TRUNCATE … RESTART IDENTITY or ALTER SEQUENCE)`,
      fix: 'let that transaction end, then run lockstep attach again (it resumes)',
    });
  const unreached = Object.entries(sequences.failed);
  if (unreached.length > 0) {
    throw new LockstepError({
      node: unreached[0]?.[0] as string,
      problem: `cannot copy sequence values: ${unreached[0]?.[1]}`,
      fix: 'check the replica and run lockstep attach again (it resumes)',
    });
  }
}
