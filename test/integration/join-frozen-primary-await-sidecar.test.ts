import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { APPLY_TIMEOUT_MS, HANG_MS, lockTable } from '../support/frozen-replica.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

// A join waits for the running sidecar to take its replica, reading the primary's
// lockstep.replica_status; the primary is frozen (SIGSTOP) while that read waits.
const clusters = useClusters({ replicas: 3 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
const settings = { applyTimeoutMs: APPLY_TIMEOUT_MS };
let config: ReturnType<typeof writeConfig>;
let joining: ReturnType<typeof writeConfig>;

beforeAll(async () => {
  const schema = 'CREATE TABLE items (id int PRIMARY KEY, v text)';
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(schema)));
  config = writeConfig(clusters.primary, [replica(0), replica(1)], settings);
  // Another file than the sidecar's: it never takes replica3, so the join keeps waiting.
  joining = writeConfig(clusters.primary, [replica(0), replica(1), replica(2)], settings);
  const attached = await lockstep(['attach', '--config', config.file]);
  expect(attached.code, attached.output).toBe(0);
});

afterAll(() => {
  config?.remove();
  joining?.remove();
});

/** Whether the join's read of the sidecar's reports waits on the lock of lockstep.replica_status. */
const joinWaits = async () =>
  (
    await clusters.primary.query(
      `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%set "stale_since"%'`,
    )
  ).length > 0;

describe('the primary frozen while a join waits for the running sidecar', () => {
  it('attach ends naming the primary (exit 3), nothing copied', async () => {
    const { primary } = clusters;
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    let attach: LockstepProcess | null = null;
    let hung: NodeJS.Timeout | undefined;
    let release = async (): Promise<void> => undefined;
    try {
      await eventually(async () => !!sidecar.logEvent('sidecar-active'), 'the sidecar active');
      const started = new LockstepProcess(['attach', '--config', joining.file]);
      attach = started;
      hung = setTimeout(() => started.kill('SIGTERM'), HANG_MS);
      await eventually(
        async () => /waiting for the running sidecar/.test(started.output),
        'the join to wait for the sidecar',
      );
      release = await lockTable(primary, 'lockstep.replica_status');
      await eventually(joinWaits, 'the join to read the sidecar reports');
      await primary.freezeServer();
      let code: number | null;
      try {
        code = await started.closed;
      } finally {
        await primary.thawServer();
      }
      expect(code, started.output).toBe(3);
      expect(started.output).toMatch(
        /\[primary\] waiting for the running sidecar to take replica3 \(lockstep\.replica_status; nothing copied yet\) failed: the primary did not answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the primary's server runs and answers .*then run lockstep attach again/,
      );
      expect(await replica(2).query('SELECT 1 FROM items')).toEqual([]);
    } finally {
      clearTimeout(hung);
      await release();
      attach?.kill('SIGTERM');
      await attach?.exited;
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  }, 180_000);
});
