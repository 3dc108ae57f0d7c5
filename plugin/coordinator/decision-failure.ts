import type { Logger } from 'pino';
import { isLockWait, isUnanswered, SYNC_REP_HINT } from '../attach/node-step.js';

/**
 * Who may hold what a decision's write waits on: it reads the stream's row
 * under a share lock and inserts the gid's row (a key another writer's
 * decision may hold while its COMMIT is still under way).
 */
const DECISION_LOCK_HELD =
  "a session on the primary holds a lock the decision needs: the stream's row in lockstep.streams (an open transaction, a lockstep pause that is frozen) or this gid's row in lockstep.decisions (another process's decision still committing, its COMMIT perhaps waiting for synchronous standbys: pg_stat_activity.wait_event = 'SyncRep'); find it in pg_locks joined with pg_stat_activity and let it finish or end it";

/**
 * Logs a failed write of a round's decision (`decision-write-failed`, node
 * primary): the first attempt (the commit) and every one after it that
 * settles the unknown outcome as an abort, so a round stuck on the primary
 * says so each time it tries, with the fix when the cause is known.
 */
export function logDecisionFailure(
  log: Logger,
  gid: string,
  error: unknown,
  attempt: 'commit' | 'abort',
): void {
  const fix = isLockWait(error)
    ? `${DECISION_LOCK_HELD}; the round is settled as an abort once it is free`
    : isUnanswered(error)
      ? `check that the primary answers; ${SYNC_REP_HINT}`
      : undefined;
  log.warn(
    {
      gid,
      err: (error as Error).message,
      node: 'primary',
      attempt,
      event: 'decision-write-failed',
      ...(fix ? { fix } : {}),
    },
    attempt === 'commit'
      ? 'recording the commit decision failed: settling it'
      : 'settling the decision failed: retrying',
  );
}
