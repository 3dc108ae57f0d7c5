import pg from 'pg';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';
import { type LockstepProcess, lockstep } from './lockstep-process.js';
import { type AttachedClusters, useAttached } from './use-attached.js';

/** Far beyond applyTimeoutMs and a session's close: a command still running then hangs (and is stopped). */
export const HANG_MS = 60_000;

/** applyTimeoutMs of the frozen-node tests: short, so each command gives up on the frozen node in seconds. */
export const APPLY_TIMEOUT_MS = 3_000;

/**
 * controlTimeoutMs of the files whose commands wait out a control deadline
 * (a primary frozen or whose COMMITs wait): 5 s instead of 30 s per wait.
 */
export const CONTROL_TIMEOUT_MS = 5_000;

/**
 * A primary and two attached replicas (items: 50 rows), applyTimeoutMs
 * {@link APPLY_TIMEOUT_MS}, and `config` over that.
 */
export function useTwoReplicas(config: Record<string, unknown> = {}): AttachedClusters & {
  replicasOf: () => [PostgresCluster, PostgresCluster];
} {
  const clusters = useAttached({
    replicas: 2,
    schema: 'CREATE TABLE items (id int PRIMARY KEY, v text);',
    seed: `INSERT INTO items SELECT g, 'seed' FROM generate_series(1, 50) g`,
    config: { applyTimeoutMs: APPLY_TIMEOUT_MS, ...config },
  });
  return Object.assign(clusters, {
    replicasOf: () => clusters.replicas as [PostgresCluster, PostgresCluster],
  });
}

/**
 * Locks `table` on `node` (by default the position table) until the returned
 * function releases it: lockstep's next read or write of it there waits (a
 * session that neither fails nor answers), so the server can be frozen while
 * that step runs.
 */
export async function lockTable(
  node: PostgresCluster,
  table = 'lockstep.applied',
): Promise<() => Promise<void>> {
  return (await holdInTransaction(node, `LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`)).release;
}

/**
 * Runs `sql` in a transaction left open on `node` until `release` (again:
 * nothing), which ends the session and with it every lock taken.
 */
export async function holdInTransaction(
  node: PostgresCluster,
  sql: string,
  params: unknown[] = [],
): Promise<{ rowCount: number | null; release: () => Promise<void> }> {
  const holder = new pg.Client({ connectionString: node.url });
  // Frozen with its server: a test that fails may leave it to the teardown.
  holder.on('error', () => undefined);
  await holder.connect();
  await holder.query('BEGIN');
  const { rowCount } = await holder.query(sql, params);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await holder.end();
  };
  return { rowCount, release };
}

/** Lockstep's sessions on `node` (no sidecar runs here: only the command's). */
const lockstepSessions = (node: PostgresCluster, waitingOnLock = false) =>
  node.query(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'lockstep%'
        AND ($1::boolean IS FALSE OR wait_event_type = 'Lock')`,
    [waitingOnLock],
  );

/**
 * Runs lockstep `args`; once one of its sessions on `node` waits on the
 * lock of `table`, the whole server is frozen (SIGSTOP) until the command
 * ended. Then: none of its sessions is left once thawed, and nothing prepared.
 */
export async function frozenDuring(
  node: PostgresCluster,
  args: string[],
  table = 'lockstep.applied',
): Promise<Awaited<ReturnType<typeof lockstep>>> {
  const release = await lockTable(node, table);
  try {
    const run = lockstep(args, {}, HANG_MS);
    await eventually(
      async () => (await lockstepSessions(node, true)).length > 0,
      `lockstep ${args[0]} waiting on the lock of ${table}`,
    );
    await node.freezeServer();
    try {
      return await run;
    } finally {
      await node.thawServer();
    }
  } finally {
    await eventually(
      async () => (await lockstepSessions(node)).length === 0,
      `the sessions of lockstep ${args[0]} to end`,
    );
    await release();
    expect(await node.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
  }
}

/** Waits until `process` has logged `replica` as unresponsive (frozen, its applier gave up on it). */
export async function markedUnresponsive(process: LockstepProcess, replica: string): Promise<void> {
  await eventually(
    async () => process.logLines().some((l) => l.replica === replica && l.state === 'unresponsive'),
    `${replica} marked unresponsive`,
  );
}
