import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { PRIMARY_FIXES } from '../setup/primary-prerequisites.js';

interface PgErrorLike {
  code?: string;
  message?: string;
}

/**
 * Turns a server error from the replication protocol (START_REPLICATION,
 * CREATE_REPLICATION_SLOT) into an error naming the setting and the fix.
 * Unknown errors are returned unchanged.
 */
export function explainReplicationError(
  error: unknown,
  context: { node: string; slot: string; publication?: string },
): Error {
  const e = (error ?? {}) as PgErrorLike;
  const message = e.message ?? String(error);
  const base = { node: context.node, sqlState: e.code, cause: error };
  if (e.code === '55000' && /wal_level/i.test(message)) {
    return new LockstepError({
      ...base,
      setting: 'wal_level',
      problem: `logical decoding is not enabled: ${message}`,
      fix: PRIMARY_FIXES.walLevel,
    });
  }
  if (e.code === '53400' || /replication slots are in use/i.test(message)) {
    return new LockstepError({
      ...base,
      setting: 'max_replication_slots',
      problem: `no free replication slot: ${message}`,
      fix: PRIMARY_FIXES.slots,
    });
  }
  if (
    e.code === '42501' ||
    /must be superuser or replication role|permission denied to (start|use) (WAL sender|replication)/i.test(
      message,
    )
  ) {
    return new LockstepError({
      ...base,
      setting: 'REPLICATION privilege',
      problem: `the role may not use replication: ${message}`,
      fix: PRIMARY_FIXES.replication(),
    });
  }
  if (e.code === '28000' && /replication/i.test(message)) {
    return new LockstepError({
      ...base,
      setting: 'pg_hba.conf',
      problem: `replication connections are refused: ${message}`,
      fix: 'allow the role in pg_hba.conf for database connections (logical replication uses the database entry) and reload',
    });
  }
  if (e.code === '55006') {
    return new LockstepError({
      ...base,
      setting: 'replication slot',
      problem: `replication slot "${context.slot}" is in use by another process: ${message}`,
      fix: 'stop the other consumer of this slot (another lockstep run?) or wait for it to exit',
    });
  }
  if (e.code === '42704') {
    return new LockstepError({
      ...base,
      setting: 'replication slot',
      problem: `the slot "${context.slot}" or publication "${context.publication ?? ''}" does not exist: ${message}`,
      fix: 'run lockstep attach to create them',
    });
  }
  if (e.code === '53300') {
    return new LockstepError({
      ...base,
      setting: 'max_wal_senders',
      problem: `no free WAL sender: ${message}`,
      fix: PRIMARY_FIXES.senders,
    });
  }
  return error instanceof Error ? error : new Error(message);
}
