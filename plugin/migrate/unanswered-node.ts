import { isUnanswered, nodeStepError } from '../attach/node-step.js';
import { isConnectionFailure, type LockstepError } from '../ports/lockstep-error.js';

/** Whether a node's short read or write in a round got no answer (its deadline passed) or no connection. */
export function notAnswered(error: unknown): boolean {
  return isUnanswered(error) || isConnectionFailure(error);
}

/**
 * The primary did not answer the barrier after its PREPARE: the migration is
 * prepared there (holding what it locked) and nothing is decided, so
 * recovery rolls it back (presumed abort). Unreachable (exit 3); never
 * "nothing changed", never success.
 */
export function barrierUnanswered(gid: string, deadlineMs: number, error: unknown): LockstepError {
  return nodeStepError(
    'primary',
    `committing the barrier of ${gid} after the migration prepared on the primary (nothing decided: no node commits it)`,
    deadlineMs,
    error,
    'run lockstep recover (it rolls back what the migration left prepared there), then run this again',
    { commits: true },
  );
}

/**
 * A replica did not answer the read of how far it applied the stream: the
 * round is refused there (the primary's prepared migration is rolled back by
 * the round; the replica prepared nothing). Unreachable (exit 3).
 */
export function positionUnanswered(
  node: string,
  deadlineMs: number,
  error: unknown,
): LockstepError {
  return nodeStepError(
    node,
    `reading how far ${node} applied the stream (to the migration's barrier; nothing prepared there)`,
    deadlineMs,
    error,
    'run this again',
  );
}
