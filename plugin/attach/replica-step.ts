import { LockstepError } from '../ports/lockstep-error.js';

/** pg's error for a query past the session's deadline (the driver's own text; it has no code). */
const DEADLINE_PASSED = /query read timeout/i;

/** Whether `error` is a query that got no answer before its session's deadline. */
export function isUnanswered(error: unknown): boolean {
  return DEADLINE_PASSED.test((error as Error | undefined)?.message ?? '');
}

/**
 * The error of a command's step on a node that failed: it names the node
 * (a replica, or "primary") and the step, and says whether the node did not
 * answer within `deadlineMs` (a frozen or overloaded host), could not be
 * reached (the connection's own fix first) or refused.
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
  const role = replica === 'primary' ? 'primary' : 'replica';
  const reason = unanswered
    ? `the ${role} did not answer for ${deadlineMs} ms (applyTimeoutMs)`
    : error instanceof LockstepError
      ? error.problem
      : ((error as Error | undefined)?.message ?? String(error));
  return new LockstepError({
    node: replica,
    // An unanswered node counts as unreachable (exit code 3), as one that refuses connections.
    ...(unanswered || connection ? { setting: 'connection' } : {}),
    sqlState,
    problem: `${step} failed: ${reason}`,
    fix: unanswered
      ? `check that the ${role}'s server runs and answers (not stopped, not overloaded), then ${fix}`
      : connection
        ? `${(error as LockstepError).fix}; then ${fix}`
        : fix,
    cause: error,
  });
}

/** {@link replicaStepError} for a step on the primary. */
export const primaryStepError = (step: string, deadlineMs: number, error: unknown, fix: string) =>
  replicaStepError('primary', step, deadlineMs, error, fix);

/**
 * How an operator command opens its primary session: bounded by
 * applyTimeoutMs, the deadline its replica steps have, so one knob says when
 * a node "does not answer"; a lock wait ends on the server at 90% of it
 * (a live but busy primary is told apart from a frozen one).
 */
export const primaryCommandSession = (
  config: { applyTimeoutMs: number },
  applicationName: string,
) =>
  ({
    bounded: true,
    applicationName,
    queryTimeoutMs: config.applyTimeoutMs,
  }) as const;
