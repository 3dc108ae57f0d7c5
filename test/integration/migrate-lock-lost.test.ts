import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, rewriteConfig } from '../support/lockstep-process.js';
import { useMigrationJoin } from '../support/migration-join.js';

// A migrate whose migrate-lock session ends while it waits (before its primary transaction
// prepares) no longer keeps a join's copy out: the copy's snapshot may precede its commit.
const { clusters, replica, config, dir, migrateAtGate } = useMigrationJoin('migrate-lock-lost');

/** Ends the session holding the stream's migrate lock (as an operator's pg_terminate_backend would). */
const terminateMigrateLock = () =>
  clusters.primary.query(
    `SELECT pg_terminate_backend(pid) FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid::int = hashtext('lockstep.migrate')`,
  );

const history = (node: PostgresCluster) => node.query('SELECT name FROM lockstep.migrations');

describe('a migrate that lost its migrate lock while it waited before its primary transaction', () => {
  it('aborts with nothing committed; the replica joined meanwhile matches; a rerun applies it everywhere', async () => {
    const { primary } = clusters;
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    const sidecar = new LockstepProcess(['run', '--config', config()]);
    let gate: pg.Client | undefined;
    try {
      await waitForMarker(primary, [r1, r2]);
      const held = await migrateAtGate();
      gate = held.gate;
      const migrate = held.migrate;
      expect(await terminateMigrateLock()).toHaveLength(1);

      rewriteConfig(config(), primary, [r1, r2, r3]);
      const joined = await lockstep(['attach', '--config', config()], {}, 180_000);
      expect(joined.code, joined.output).toBe(0);
      await gate.query('COMMIT');

      const up = await migrate;
      expect(up.code, up.output).not.toBe(0);
      expect(up.output).toMatch(/lost the migrate lock of stream "lockstep"/);
      expect(up.output).toMatch(/run it again: nothing was committed anywhere/);
      for (const node of [primary, r1, r2, r3]) expect(await history(node)).toEqual([]);
      expect(await preparedGids([primary, r1, r2, r3])).toEqual([]);
      await waitForMarker(primary, [r1, r2, r3]);
      await expectIdentical(primary, [r1, r2, r3], ['items', 'marker']);

      const again = await lockstep(['migrate', 'up', '--config', config(), '--dir', dir]);
      expect(again.code, again.output).toBe(0);
      await waitForMarker(primary, [r1, r2, r3]);
      expect(await appliedVersion(r3)).toBe(await appliedVersion(r1));
      await expectIdentical(primary, [r1, r2, r3], ['items', 'marker']);
      for (const node of [primary, r1, r2, r3])
        expect(await history(node)).toEqual([{ name: '001-renew' }]);
    } finally {
      await gate?.end().catch(() => undefined);
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  }, 300_000);
});
