import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const LARGE = 10_000;
const APPLY_TIMEOUT_MS = 3_000;
const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE crit (id int PRIMARY KEY, v int NOT NULL)',
  seed: 'INSERT INTO crit VALUES (1, 0)',
  config: {
    applyTimeoutMs: APPLY_TIMEOUT_MS,
    retry: { initialMs: 200, maxMs: 2_000 },
    twoPhase: { tables: ['public.crit'], voteTimeoutMs: 8_000, recoveryIntervalMs: 2_000 },
  },
});

const rows = async (node: PostgresCluster): Promise<number> =>
  (await node.query<{ n: number }>('SELECT count(*)::int AS n FROM crit'))[0]?.n ?? 0;

/** replica1's open apply transaction: its session and age in seconds; null when none is open. */
async function openApplyTransaction(
  node: PostgresCluster,
): Promise<{ pid: number; age: number } | null> {
  const [s] = await node.query<{ pid: number; age: number }>(
    `SELECT pid, extract(epoch FROM now() - xact_start)::float8 AS age FROM pg_stat_activity
      WHERE application_name = 'lockstep-apply-replica1' AND xact_start IS NOT NULL`,
  );
  return s ?? null;
}

// Rounds run one at a time: while phase two of v1 waits for a frozen replica, the healthy one
// streams the large two-phase v2 and waits at its gate, its transaction open and idle.
describe('a healthy replica at the gate of a large two-phase packet', () => {
  it('keeps its open transaction while the round before finishes on a frozen replica', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const holder = new pg.Client({ connectionString: r1.url });
    let frozen = false;
    await holder.connect();
    try {
      await eventually(async () => !!sidecar.logEvent('sidecar-active'), 'the sidecar active');
      // replica1's vote on v1 waits on this row, so replica2 prepares first and is frozen prepared.
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM crit WHERE id = 1 FOR UPDATE');
      await clusters.primary.query('UPDATE crit SET v = 1 WHERE id = 1');
      await eventually(
        async () => (await r2.query('SELECT 1 FROM pg_prepared_xacts')).length > 0,
        'replica2 prepared v1',
      );
      await r2.freezeServer();
      frozen = true;
      await holder.query('COMMIT');
      await clusters.primary.query(
        `INSERT INTO crit SELECT g, g FROM generate_series(2, ${LARGE + 1}) g`,
      );
      let atGate: { pid: number; age: number } | null = null;
      await eventually(async () => {
        atGate = await openApplyTransaction(r1);
        return atGate !== null;
      }, 'replica1 at the gate of v2');
      // Past the apply deadline at the gate (or ended by the replica).
      await eventually(async () => {
        const open = await openApplyTransaction(r1);
        return open?.pid !== atGate?.pid || (open?.age ?? 0) > (APPLY_TIMEOUT_MS + 1_000) / 1000;
      }, 'replica1 waiting at the gate past the apply deadline');
      await r2.thawServer();
      frozen = false;
      await eventually(
        async () => (await rows(r1)) === LARGE + 1 && (await rows(r2)) === LARGE + 1,
        'both replicas applied v2',
      );
      expect(await r1.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
      expect(await r2.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
      // The healthy replica never failed, and v2's round was not aborted for it.
      expect(sidecar.events('replica-stopped', { replica: 'replica1' })).toEqual([]);
      const aborted = sidecar.logLines().filter((l) => l.refusals !== undefined && l.from === 2);
      expect(aborted).toEqual([]);
    } finally {
      if (frozen) await r2.thawServer();
      await holder.end().catch(() => undefined);
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
