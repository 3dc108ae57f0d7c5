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
 * exited would leave its replica's rounds refused meanwhile). Any other error
 * is thrown: it is not cured by waiting.
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
      if (!isConnectionFailure(error) && !endedByServer(error)) throw error;
      log.warn(
        { node: waiting.node, err: (error as Error).message, retryMs: delay, event: waiting.event },
        waiting.message,
      );
      await sleep(delay);
    }
  }
}
