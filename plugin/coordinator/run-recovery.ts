import { DecisionLog } from '../../adapters/postgres/decision-log.js';
import { PreparedTransactions } from '../../adapters/postgres/prepared-transactions.js';
import { StreamLock } from '../../adapters/postgres/stream-lock.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../lockstep-error.js';
import { type RecoveryReport, recoverPrepared } from './recover-prepared.js';

/** Phase-two access to every node of a configuration: the primary, then each replica. */
export function preparedTransactionNodes(
  config: LockstepConfig,
): Map<string, PreparedTransactions> {
  return new Map(
    [{ name: 'primary', url: config.primary }, ...config.replicas].map((n) => [
      n.name,
      new PreparedTransactions(n.name, n.url),
    ]),
  );
}

/**
 * `lockstep recover`: one recovery pass, as the only coordinator. A running
 * sidecar holds the coordinator lock and recovers by itself (at start and
 * every `twoPhase.recoveryIntervalMs`); this refuses rather than race it.
 */
export async function runRecovery(config: LockstepConfig): Promise<RecoveryReport> {
  const lock = new StreamLock(config.primary, config.slot);
  if (!(await lock.tryAcquire())) {
    throw new LockstepError({
      node: 'primary',
      problem: `a lockstep sidecar for stream "${config.slot}" is running and holds the coordinator lock`,
      fix: `it recovers by itself every twoPhase.recoveryIntervalMs (${config.twoPhase.recoveryIntervalMs} ms); stop it first to recover by hand`,
    });
  }
  // A migration in flight (its `lockstep migrate` holds this lock) is left to it.
  const migrateLock = new StreamLock(config.primary, config.slot, 'migrate');
  const migrations = await migrateLock.tryAcquire();
  const nodes = preparedTransactionNodes(config);
  const decisions = new DecisionLog(config.primary, config.slot);
  try {
    return await recoverPrepared(config.slot, [...nodes.values()], decisions, {
      kinds: migrations ? ['stream', 'migration'] : ['stream'],
    });
  } finally {
    await decisions.close();
    for (const node of nodes.values()) await node.close();
    await migrateLock.release();
    await lock.release();
  }
}
