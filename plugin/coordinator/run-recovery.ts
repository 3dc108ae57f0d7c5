import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { type RecoveryReport, recoverPrepared } from './recover-prepared.js';

/** Phase-two access to every node of a configuration: the primary, then each replica. */
export function preparedTransactionNodes(
  config: LockstepConfig,
): Map<string, PreparedTransactions> {
  return new Map(configNodes(config).map((n) => [n.name, new PreparedTransactions(n.name, n.url)]));
}

/**
 * `lockstep recover`: one recovery pass. Stream rounds' gids only while no
 * sidecar runs (a running one holds the coordinator lock and recovers them
 * itself, at start and every `twoPhase.recoveryIntervalMs`); migrations' gids
 * only while no `migrate`/`exec` runs (the migrate lock). Refuses when both
 * are busy: there is nothing it may touch.
 */
export async function runRecovery(config: LockstepConfig): Promise<RecoveryReport> {
  const coordinator = new StreamLock(config.primary, config.slot);
  const migrate = new StreamLock(config.primary, config.slot, 'migrate');
  const kinds: Array<'stream' | 'migration'> = [];
  const nodes = preparedTransactionNodes(config);
  let decisions: DecisionLog | null = null;
  try {
    if (await coordinator.tryAcquire()) kinds.push('stream');
    if (await migrate.tryAcquire()) kinds.push('migration');
    // Holding the coordinator lock, its decisions are fenced like a sidecar's.
    decisions = kinds.includes('stream')
      ? new DecisionLog(config.primary, config.slot, () =>
          coordinator.held ? coordinator.epoch : null,
        )
      : new DecisionLog(config.primary, config.slot);
    if (kinds.length === 0) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep sidecar and a lockstep migrate for stream "${config.slot}" are both running`,
        fix: `the sidecar recovers by itself every twoPhase.recoveryIntervalMs (${config.twoPhase.recoveryIntervalMs} ms); run recover again once the migration finished`,
      });
    }
    return await recoverPrepared(config.slot, [...nodes.values()], decisions, { kinds });
  } finally {
    await decisions?.close();
    for (const node of nodes.values()) await node.close();
    await migrate.release();
    await coordinator.release();
  }
}
