import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';
import type { LockstepProcess } from './lockstep-process.js';

/** A session on the primary: what it does, and whether its open transaction holds the stream row. */
export interface StreamRowSession {
  pid: number;
  state: string;
  waiting: boolean;
  holdsStreamRow: boolean;
}

/** The sessions of `application` on the primary. */
export function sessionsOf(
  primary: PostgresCluster,
  application: string,
): Promise<StreamRowSession[]> {
  return primary.query<StreamRowSession>(
    `SELECT a.pid, a.state, a.wait_event_type = 'Lock' AS waiting,
            a.state = 'idle in transaction' AND a.backend_xid IS NOT NULL
              AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                            AND l.relation = 'lockstep.streams'::regclass) AS "holdsStreamRow"
       FROM pg_stat_activity a WHERE a.application_name = $1`,
    [application],
  );
}

/**
 * Freezes `process` (SIGSTOP) inside a transaction that holds the stream row,
 * deterministically: a test session holds the row until the process's
 * `application` session waits on it, the process is frozen, then the row is
 * released, so its statement completes and its transaction stays open with
 * its client frozen. Returns the frozen session's pid.
 */
export async function freezeHoldingStreamRow(
  primary: PostgresCluster,
  process: LockstepProcess,
  application: string,
): Promise<number> {
  const blocker = new pg.Client({ connectionString: primary.url });
  try {
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM lockstep.streams FOR UPDATE');
    await eventually(
      async () => (await sessionsOf(primary, application)).some((s) => s.waiting),
      `the ${application} session waiting on the row`,
    );
    process.kill('SIGSTOP');
    await blocker.query('COMMIT');
  } finally {
    await blocker.end().catch(() => undefined);
  }
  let pid: number | undefined;
  await eventually(async () => {
    pid = (await sessionsOf(primary, application)).find((s) => s.holdsStreamRow)?.pid;
    return pid !== undefined;
  }, `the frozen ${application} session holding the row`);
  return pid as number;
}
