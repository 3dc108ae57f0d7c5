import type { Logger } from 'pino';
import { isLockWait, STREAM_ROW_HELD } from '../attach/node-step.js';
import type { StreamLockHolder } from '../ports/stream-lock-holder.js';

/**
 * What a lock wait on the primary means while taking the coordinator lock:
 * the advisory lock is free, but raising the stream's epoch waits on a
 * session that holds the stream's row.
 */
const ROW_HELD_FIX = `${STREAM_ROW_HELD}; lockstep tries again every second`;

/**
 * One attempt at the coordinator lock: true when taken, false when another
 * process holds it, null when the attempt failed (logged as
 * `lock-unreadable`, with the fix when a lock wait ended it): a failure is
 * not "another sidecar is active".
 */
export async function attemptCoordinatorLock(
  lock: StreamLockHolder,
  log: Logger,
): Promise<boolean | null> {
  try {
    return await lock.tryAcquire();
  } catch (error) {
    log.warn(
      {
        err: (error as Error).message,
        event: 'lock-unreadable',
        ...(isLockWait(error) ? { fix: ROW_HELD_FIX } : {}),
      },
      'cannot take the coordinator lock',
    );
    return null;
  }
}
