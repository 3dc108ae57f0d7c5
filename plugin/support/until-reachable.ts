import type { Logger } from 'pino';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import { sleep } from '../support/sleep.js';

/**
 * A session the server ended as it stopped (57P01) or crashed (57P02), a
 * socket closed under a query, or a query the server did not answer within
 * the control query timeout (a node frozen after it accepted the session).
 */
function endedByServer(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === '57P01' || code === '57P02') return true;
    if (typeof message === 'string' && /Connection terminated|Query read timeout/i.test(message))
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** A lock wait the server ended (lock_timeout, 55P03): the node answers, a session holds what the step needs. */
function endedLockWait(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if ((e as { code?: unknown }).code === '55P03') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

const lockWaitFix = (node: string) =>
  `find the session on ${node === 'primary' ? 'the primary' : `replica ${node}`} that holds the lock: pg_locks joined with pg_stat_activity (a transaction that used a lockstep.* table, another lockstep process upgrading the control schema), or pg_prepared_xacts for a transaction left prepared (lockstep recover finishes those); let it finish or end it; lockstep tries again`;

/** What {@link untilReachable} logs while it waits. */
export interface Waiting {
  readonly node: string;
  readonly event: string;
  readonly message: string;
}

/**
 * Runs a start-up step of a long-running process until the node it needs
 * answers: a replica or bus restarting as the agent starts is waited for, as
 * `lockstep run` waits for its primary (a supervisor restarting an agent that
 * exited would leave its replica's rounds refused meanwhile), and a lock wait
 * the server ended is tried again, named (event `lock-wait`, with a fix).
 * Any other error is thrown: it is not cured by waiting.
 */
export async function untilReachable<T>(
  step: () => Promise<T>,
  waiting: Waiting,
  log: Logger,
): Promise<T> {
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      return await step();
    } catch (error) {
      const err = (error as Error).message;
      if (endedLockWait(error))
        log.warn(
          {
            node: waiting.node,
            err,
            retryMs: delay,
            event: 'lock-wait',
            fix: lockWaitFix(waiting.node),
          },
          'a lock the start needs is held: retrying',
        );
      else if (isConnectionFailure(error) || endedByServer(error))
        log.warn(
          { node: waiting.node, err, retryMs: delay, event: waiting.event },
          waiting.message,
        );
      else throw error;
      await sleep(delay);
    }
  }
}
