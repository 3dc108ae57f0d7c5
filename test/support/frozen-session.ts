import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';
import type { LockstepProcess } from './lockstep-process.js';

/** A session on a node: what it does, and whether its open transaction holds a lock on a table. */
export interface HeldRowSession {
  pid: number;
  state: string;
  waiting: boolean;
  /** Idle in a transaction that wrote and holds a lock on the table asked about. */
  holdsRow: boolean;
}

/** The sessions of `application` on `node`, and whether each holds a row of `table`. */
export function sessionsOf(
  node: PostgresCluster,
  application: string,
  table = 'lockstep.streams',
): Promise<HeldRowSession[]> {
  return node.query<HeldRowSession>(
    `SELECT a.pid, a.state, a.wait_event_type = 'Lock' AS waiting,
            a.state = 'idle in transaction' AND a.backend_xid IS NOT NULL
              AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                            AND l.relation = $2::regclass) AS "holdsRow"
       FROM pg_stat_activity a WHERE a.application_name = $1`,
    [application, table],
  );
}

/** Where to freeze a process: the rows a test session holds, and the table its frozen transaction keeps. */
export interface FreezePoint {
  readonly node: PostgresCluster;
  /** The application_name of the process's session that is to wait on the rows. */
  readonly application: string;
  /** Locks the rows the process's session will wait on, e.g. `SELECT 1 FROM t FOR UPDATE`. */
  readonly holdSql: string;
  /** The table the frozen transaction is to hold a lock on once it went on. */
  readonly holds: string;
  /** What makes the process's session wait on the rows, run once they are held (a write, or starting the process). */
  readonly trigger?: () => Promise<unknown>;
}

/**
 * Freezes `process` (SIGSTOP) inside an open transaction, deterministically:
 * a test session holds rows until the process's session waits on them, the
 * process is frozen, then the rows are released, so its statements complete
 * and its transaction stays open with its client frozen. Returns the frozen
 * session's pid.
 */
export async function freezeInTransaction(
  process: LockstepProcess | (() => LockstepProcess),
  { node, application, holdSql, holds, trigger }: FreezePoint,
): Promise<number> {
  const blocker = new pg.Client({ connectionString: node.url });
  try {
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query(holdSql);
    await trigger?.();
    await eventually(
      async () => (await sessionsOf(node, application, holds)).some((s) => s.waiting),
      `the ${application} session waiting on the rows`,
    );
    // A function: the process the trigger started.
    (typeof process === 'function' ? process() : process).kill('SIGSTOP');
    await blocker.query('COMMIT');
  } finally {
    await blocker.end().catch(() => undefined);
  }
  let pid: number | undefined;
  await eventually(async () => {
    pid = (await sessionsOf(node, application, holds)).find((s) => s.holdsRow)?.pid;
    return pid !== undefined;
  }, `the frozen ${application} session holding ${holds}`);
  return pid as number;
}

/** Freezes `process` inside a transaction that holds the primary's stream row (see above). */
export function freezeHoldingStreamRow(
  primary: PostgresCluster,
  process: LockstepProcess,
  application: string,
): Promise<number> {
  return freezeInTransaction(process, {
    node: primary,
    application,
    holdSql: 'SELECT 1 FROM lockstep.streams FOR UPDATE',
    holds: 'lockstep.streams',
  });
}

/** Ends a frozen sidecar's coordinator lock session and walsender on the primary (a DBA, timeouts). */
export async function endCoordinatorSessions(primary: PostgresCluster): Promise<void> {
  await primary.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = 'lockstep-coordinator'`,
  );
  await primary.query(
    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'lockstep' AND active_pid IS NOT NULL",
  );
}

/** Inserts ids `from`..`to` into `t(id)` on the primary, in one transaction. */
export async function insertIds(primary: PostgresCluster, from: number, to: number): Promise<void> {
  await primary.query('INSERT INTO t SELECT generate_series($1::int, $2::int)', [from, to]);
}

/**
 * Waits until the server has ended session `pid` of `application` on `node`. A backend releases
 * its locks before it leaves pg_stat_activity, so a write that got the lock may see it still listed.
 */
export function sessionEnded(
  node: PostgresCluster,
  application: string,
  pid: number,
): Promise<void> {
  return eventually(
    async () => !(await sessionsOf(node, application)).some((s) => s.pid === pid),
    `the server to end ${application} session ${pid}`,
    30_000,
  );
}
