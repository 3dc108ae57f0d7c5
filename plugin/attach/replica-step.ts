import { LockstepError } from '../ports/lockstep-error.js';

/** pg's error for a query past the session's deadline (the driver's own text; it has no code). */
const DEADLINE_PASSED = /query read timeout/i;

/** Whether `error` is a query that got no answer before its session's deadline. */
export function isUnanswered(error: unknown): boolean {
  return DEADLINE_PASSED.test((error as Error | undefined)?.message ?? '');
}

/**
 * The error of a command's step on a replica that failed: it names the
 * replica and the step, and says whether the replica did not answer within
 * `deadlineMs` (a frozen or overloaded host), could not be reached (the
 * connection's own fix first) or refused.
 */
export function replicaStepError(
  replica: string,
  step: string,
  deadlineMs: number,
  error: unknown,
  fix: string,
): LockstepError {
  const { code, sqlState = code } = (error ?? {}) as { code?: string; sqlState?: string };
  const connection = error instanceof LockstepError && error.setting === 'connection';
  const unanswered = isUnanswered(error);
  const reason = unanswered
    ? `the replica did not answer for ${deadlineMs} ms (applyTimeoutMs)`
    : error instanceof LockstepError
      ? error.problem
      : ((error as Error | undefined)?.message ?? String(error));
  return new LockstepError({
    node: replica,
    // An unanswered replica counts as unreachable (exit code 3), as one that refuses connections.
    ...(unanswered || connection ? { setting: 'connection' } : {}),
    sqlState,
    problem: `${step} failed: ${reason}`,
    fix: unanswered
      ? `check that the replica's server runs and answers (not stopped, not overloaded), then ${fix}`
      : connection
        ? `${(error as LockstepError).fix}; then ${fix}`
        : fix,
    cause: error,
  });
}
