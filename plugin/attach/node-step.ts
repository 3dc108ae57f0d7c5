import { LockstepError } from '../ports/lockstep-error.js';

/**
 * pg's errors (its own texts; they have no code) for a query past the
 * session's deadline, and for a connection the server did not take within
 * the connect timeout (left raw only where a step connects on its own).
 */
const DEADLINE_PASSED = /query read timeout|^timeout expired$/i;

/** Whether `error` is a query, or a step's own connection, that got no answer before its deadline. */
export function isUnanswered(error: unknown): boolean {
  return DEADLINE_PASSED.test((error as Error | undefined)?.message ?? '');
}

/** pg's error (no code) for a connection that closed under a query: the server ended or lost it. */
const SESSION_LOST = /^connection terminated/i;

/** Whether `error` is a session that ended under a query (the node stopped, crashed or the network cut it). */
export function isSessionLost(error: unknown): boolean {
  return SESSION_LOST.test((error as Error | undefined)?.message ?? '');
}

/**
 * A raw pg error for a node that stopped answering (its query deadline
 * passed) or closed the session under a query.
 */
export function isNodeLost(error: unknown): boolean {
  return isUnanswered(error) || isSessionLost(error);
}

/** SQLSTATE lock_not_available: a lock wait ended by lock_timeout (the node answers; a session holds the lock). */
const LOCK_NOT_AVAILABLE = '55P03';

/** Whether `error` is a lock wait the server ended (lock_timeout): a busy node, not a frozen one. */
export function isLockWait(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === LOCK_NOT_AVAILABLE;
}

/**
 * Who holds the stream's row in lockstep.streams when a lockstep session's
 * lock wait on it ends (taking the coordinator lock raises the epoch in it;
 * a decision reads it under a share lock), and how to find them.
 */
export const STREAM_ROW_HELD =
  "a session on the primary holds the stream's row in lockstep.streams (an open transaction, a lockstep pause that is frozen, a decision whose COMMIT waits for synchronous standbys: pg_stat_activity.wait_event = 'SyncRep'): find it in pg_locks joined with pg_stat_activity and let it finish or end it";

/**
 * Why a live node's COMMIT (or COMMIT/ROLLBACK PREPARED, or a write's
 * commit) may not return: it waits for a synchronous standby that does not
 * confirm (Postgres waits forever, whatever the client's deadline).
 */
export const SYNC_REP_HINT =
  "if it answers other sessions, its COMMIT may be waiting for synchronous standbys (pg_stat_activity.wait_event = 'SyncRep'): bring the standby back or change synchronous_standby_names";

/** What kind of step failed: `commits` when it ends in a commit on the node (it may wait on SyncRep). */
export interface NodeStep {
  readonly commits?: boolean;
}

/**
 * The error of a command's step on a node that failed: it names the node
 * (a replica, or "primary") and the step, and says whether the node did not
 * answer within `deadline` (ms of applyTimeoutMs, or words naming another
 * deadline; a frozen or overloaded host, or for a step that `commits`, a
 * synchronous standby it waits for), could not be reached (the connection's
 * own fix first) or refused.
 */
export function nodeStepError(
  node: string,
  step: string,
  deadline: number | string,
  error: unknown,
  fix: string,
  kind: NodeStep = {},
): LockstepError {
  const { code, sqlState = code } = (error ?? {}) as { code?: string; sqlState?: string };
  const connection =
    (error instanceof LockstepError && error.setting === 'connection') || isSessionLost(error);
  const unanswered = isUnanswered(error);
  const role = node === 'primary' ? 'primary' : 'replica';
  const lockWait = isLockWait(error);
  const reason = unanswered
    ? `the ${role} did not answer ${typeof deadline === 'number' ? `for ${deadline} ms (applyTimeoutMs)` : deadline}`
    : lockWait
      ? 'a lock it needs was not granted within lock_timeout: another session holds it (the node answers)'
      : error instanceof LockstepError
        ? error.problem
        : ((error as Error | undefined)?.message ?? String(error));
  return new LockstepError({
    node,
    // An unanswered node counts as unreachable (exit code 3), as one that refuses connections.
    ...(unanswered || connection ? { setting: 'connection' } : {}),
    sqlState,
    problem: `${step} failed: ${reason}`,
    fix: unanswered
      ? `check that the ${role}'s server runs and answers (not stopped, not overloaded)${kind.commits ? `; ${SYNC_REP_HINT};` : ','} then ${fix}`
      : lockWait
        ? `find the session on the ${role} that holds the lock (pg_locks joined with pg_stat_activity), let it finish or end it, then ${fix}`
        : connection && error instanceof LockstepError
          ? `${error.fix}; then ${fix}`
          : fix,
    cause: error,
  });
}

/** {@link nodeStepError} for a step on the primary. */
export const primaryStepError = (step: string, deadlineMs: number, error: unknown, fix: string) =>
  nodeStepError('primary', step, deadlineMs, error, fix);

/**
 * How an operator command opens its primary session: bounded by
 * applyTimeoutMs, the deadline its replica steps have, so one knob says when
 * a node "does not answer"; a lock wait ends on the server a margin before it
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

/**
 * How attach opens a primary session whose statements may rightly wait on an
 * application's locks (CREATE PUBLICATION): no deadline, but a primary that
 * stops answering one for applyTimeoutMs fails it, named (exit 3).
 */
export const watchedPrimarySession = (config: { applyTimeoutMs: number }) =>
  ({ answerWatchMs: config.applyTimeoutMs }) as const;

/**
 * Taking the stream's lock failed: a primary that stops answering there (its
 * control deadline, not applyTimeoutMs) is named and unreachable (exit 3), as
 * in detach's later steps; a lock wait is named with its fix. `during` says
 * which command and that it changed nothing yet, `again` how to rerun it.
 */
export function lockNotTaken(
  stream: string,
  error: unknown,
  during = 'detach; nothing dropped yet',
  again = 'run lockstep detach again',
): unknown {
  if (!isUnanswered(error) && !isLockWait(error)) return error;
  return nodeStepError(
    'primary',
    `taking the coordinator lock of stream "${stream}" (${during})`,
    'within its control deadline',
    error,
    again,
  );
}
