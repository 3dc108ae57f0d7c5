import type { DecisionStore } from '../ports/decision-store.js';
import type {
  LockstepCluster,
  PrimarySession,
  ReplicaSession,
  SessionOptions,
} from '../ports/lockstep-cluster.js';
import type { PhaseTwoNode } from '../ports/phase-two-node.js';
import { isLockWait, isUnanswered, nodeStepError, primaryCommandSession } from './node-step.js';

/** What attach needs of the nodes: the cluster, and the decision log a start-over finishes rounds by. */
export interface AttachCluster extends LockstepCluster {
  /** The stream's decision log, unfenced: the caller holds the coordinator lock. */
  decisionLog(url: string, stream: string): DecisionStore & { close(): Promise<void> };
  /** Phase two on every node of a configuration, by name: the primary, then each replica. */
  phaseTwoNodes(config: {
    readonly primary: string;
    readonly replicas: ReadonlyArray<{ readonly name: string; readonly url: string }>;
  }): Map<string, PhaseTwoNode>;
}

/** Runs `work` on a session on the primary (unbounded unless `options` say so), closed afterwards. */
export async function onPrimary<T>(
  cluster: LockstepCluster,
  url: string,
  work: (primary: PrimarySession) => Promise<T>,
  options?: SessionOptions,
): Promise<T> {
  const primary = await cluster.primary(url, options);
  try {
    return await work(primary);
  } finally {
    await primary.close();
  }
}

/**
 * A command's step on the primary, bounded as its replica steps
 * (applyTimeoutMs; a lock wait ends on the server a margin before it): a
 * primary that stops answering, or a session holding what the step needs,
 * fails the step naming it and `fix`, instead of hanging the command.
 */
export async function onPrimaryStep<T>(
  cluster: LockstepCluster,
  config: { readonly primary: string; readonly applyTimeoutMs: number },
  step: {
    readonly name: string;
    readonly fix: string;
    readonly applicationName?: string;
    /** The step ends in a COMMIT there: one that may wait for a synchronous standby. */
    readonly commits?: boolean;
  },
  work: (primary: PrimarySession) => Promise<T>,
): Promise<T> {
  const session = primaryCommandSession(config, step.applicationName ?? 'lockstep');
  try {
    return await onPrimary(cluster, config.primary, work, session);
  } catch (error) {
    if (!isUnanswered(error) && !isLockWait(error)) throw error;
    throw nodeStepError('primary', step.name, config.applyTimeoutMs, error, step.fix, step);
  }
}

/**
 * Runs `work` on a session on a replica, closed afterwards. Bounded unless
 * asked otherwise: a replica that stops answering fails the step instead of
 * hanging attach.
 */
export async function onReplica<T>(
  cluster: LockstepCluster,
  replica: { name: string; url: string },
  work: (session: ReplicaSession) => Promise<T>,
  options?: SessionOptions,
): Promise<T> {
  const session = await cluster.replica(replica.name, replica.url, { bounded: true, ...options });
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}
