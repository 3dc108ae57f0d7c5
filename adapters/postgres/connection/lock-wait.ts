import { LockstepError } from '../../../plugin/ports/lockstep-error.js';

/** SQLSTATE lock_not_available: a lock wait the server ended (lock_timeout). */
export const LOCK_NOT_AVAILABLE = '55P03';

/** Whether `error` is a lock wait the server ended: the node answers, a session holds the lock. */
export function isLockNotAvailable(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === LOCK_NOT_AVAILABLE;
}

/**
 * A lock wait the server ended, as an error naming the node and the step
 * (`fix` says where to look); any other error as it is.
 */
export function namedLockWait(node: string, step: string, error: unknown, fix: string): unknown {
  if (!isLockNotAvailable(error)) return error;
  return new LockstepError({
    node,
    sqlState: LOCK_NOT_AVAILABLE,
    problem: `${step} failed: a lock it needs was not granted within lock_timeout: another session holds it (the ${node === 'primary' ? 'primary' : 'replica'} answers)`,
    fix,
    cause: error,
  });
}
