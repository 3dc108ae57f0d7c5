import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';

/** The backends of `applicationName` on `node` that wait on a lock, by pid. */
export async function waitingOnLock(
  node: PostgresCluster,
  applicationName: string,
): Promise<number[]> {
  const rows = await node.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
    [applicationName],
  );
  return rows.map((r) => r.pid);
}

/**
 * Watches `applicationName`'s lock waits on `node` until `attempts`
 * different backends were seen waiting (each attempt of a step that opens a
 * session of its own), and returns the most seen waiting at once: a step
 * whose backends outlive their client's give-up piles them up.
 */
export async function mostWaitingAtOnce(
  node: PostgresCluster,
  applicationName: string,
  attempts: number,
): Promise<number> {
  const seen = new Set<number>();
  let most = 0;
  await eventually(async () => {
    const waiting = await waitingOnLock(node, applicationName);
    most = Math.max(most, waiting.length);
    for (const pid of waiting) seen.add(pid);
    return seen.size >= attempts;
  }, `${attempts} attempts of ${applicationName} waiting on a lock`);
  return most;
}
