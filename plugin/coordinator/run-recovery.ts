import { isLockWait, isNodeLost } from '../attach/node-step.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { DecisionStore } from '../ports/decision-store.js';
import { isConnectionFailure, LockstepError } from '../ports/lockstep-error.js';
import type { PhaseTwoNode } from '../ports/phase-two-node.js';
import type { StreamLockHolder, StreamLockPurpose } from '../ports/stream-lock-holder.js';
import { type RecoveryReport, recoverPrepared, recoveryStepError } from './recover-prepared.js';

/** What a recovery pass reaches the nodes through (the composition root wires the adapters). */
export interface RecoveryWiring {
  /** The stream's lock of `purpose` on the primary, not yet taken. */
  streamLock(purpose: StreamLockPurpose): StreamLockHolder;
  /** The decision log; fenced by the writer's `epoch` when given. */
  decisionLog(epoch?: () => number | null): DecisionStore;
  /** Phase two on every node of the configuration, by name. */
  phaseTwoNodes(): Map<string, PhaseTwoNode>;
}

/**
 * `lockstep recover`: one recovery pass. Stream rounds' gids only while no
 * sidecar runs (a running one holds the coordinator lock and recovers them
 * itself, at start and every `twoPhase.recoveryIntervalMs`); migrations' gids
 * only while no `migrate`/`exec` runs (the migrate lock). Refuses when both
 * are busy: there is nothing it may touch.
 */
export async function runRecovery(
  config: LockstepConfig,
  wiring: RecoveryWiring,
): Promise<RecoveryReport> {
  const coordinator = wiring.streamLock('coordinator');
  const migrate = wiring.streamLock('migrate');
  const kinds: Array<'stream' | 'migration'> = [];
  const nodes = wiring.phaseTwoNodes();
  let decisions: DecisionStore | null = null;
  try {
    // Taking the coordinator lock raises the stream's epoch: a write whose COMMIT may wait on SyncRep.
    const took = (lock: StreamLockHolder, purpose: StreamLockPurpose) =>
      onPrimary(lock.tryAcquire(), `taking the ${purpose} lock of stream "${config.slot}"`);
    if (await took(coordinator, 'coordinator')) kinds.push('stream');
    if (await took(migrate, 'migrate')) kinds.push('migration');
    // Holding the coordinator lock, its decisions are fenced like a sidecar's.
    decisions = kinds.includes('stream')
      ? wiring.decisionLog(() => (coordinator.held ? coordinator.epoch : null))
      : wiring.decisionLog();
    if (kinds.length === 0) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep sidecar and a lockstep migrate for stream "${config.slot}" are both running`,
        fix: `the sidecar recovers by itself every twoPhase.recoveryIntervalMs (${config.twoPhase.recoveryIntervalMs} ms); run recover again once the migration finished`,
      });
    }
    // Nodes' phase-two failures are in the report; what escapes is the primary's decision log.
    return await onPrimary(
      recoverPrepared(config.slot, [...nodes.values()], decisions, { kinds }),
      `reading the decision log of stream "${config.slot}" or recording an abort there`,
    );
  } finally {
    await decisions?.close();
    for (const node of nodes.values()) await node.close();
    await migrate.release();
    await coordinator.release();
  }
}

/**
 * A recovery step on the primary that got no answer or lost its connection
 * becomes an error naming the primary and the step (exit 3); nothing was
 * finished by that step, so recover can simply run again.
 */
async function onPrimary<T>(step: Promise<T>, what: string): Promise<T> {
  try {
    return await step;
  } catch (error) {
    // A lock wait the server ended is named too: a live primary where a session holds a row.
    const named = isNodeLost(error) || isConnectionFailure(error) || isLockWait(error);
    if (error instanceof LockstepError || !named) throw error;
    throw recoveryStepError('primary', `${what} (recover)`, error);
  }
}
