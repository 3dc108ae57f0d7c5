import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE items (id int PRIMARY KEY, v text);',
  seed: `INSERT INTO items SELECT g, 'seed' FROM generate_series(1, 50) g`,
});

const slots = async (primary: PostgresCluster) =>
  (await primary.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots')).map(
    (r) => r.slot_name,
  );

describe('lockstep detach', () => {
  it('refuses while a sidecar runs, then drops slot and publication, keeps the data, and allows a fresh attach', async () => {
    const [r1] = clusters.replicas as [PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(
        async () => sidecar.logEvent('sidecar-active') !== undefined,
        'the sidecar to run',
      );
      const refused = await lockstep(['detach', '--config', clusters.configFile]);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(
        /sidecar .* is running[\s\S]*fix: stop it first, or run lockstep detach --force/,
      );
      expect(await slots(clusters.primary)).toEqual(['lockstep']);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }

    // A lockstep transaction left prepared on a replica (not on the primary) holds its position
    // row: detach names it and changes nothing, instead of blocking on that row.
    const gid = 'lockstep_lockstep_99_1e1';
    await r1.query(
      `BEGIN; UPDATE lockstep.applied SET applied_at = now(); PREPARE TRANSACTION '${gid}'`,
    );
    const held = await lockstep(['detach', '--config', clusters.configFile], {}, 60_000);
    expect(held.code).toBe(1);
    expect(held.output).toContain(`replica1: ${gid}`);
    expect(await slots(clusters.primary)).toEqual(['lockstep']);
    await r1.query(`ROLLBACK PREPARED '${gid}'`);

    const detached = await lockstep(['detach', '--config', clusters.configFile]);
    expect(detached.code).toBe(0);
    expect(detached.output).toMatch(/slot "lockstep" dropped, publication "lockstep" dropped/);
    expect(await slots(clusters.primary)).toEqual([]);
    expect(await clusters.primary.query('SELECT 1 FROM pg_publication')).toEqual([]);
    // Data and the control schema stay.
    expect(await r1.query('SELECT count(*)::int AS n FROM items')).toEqual([{ n: 50 }]);
    expect(await r1.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'`)).toHaveLength(1);
    // Detaching again is harmless.
    expect((await lockstep(['detach', '--config', clusters.configFile])).output).toMatch(
      /already gone/,
    );

    // A fresh attach copies and streams again (it copies only into empty tables, as its message says).
    await clusters.primary.query(`INSERT INTO items VALUES (51, 'after detach')`);
    const refusedCopy = await lockstep(['attach', '--config', clusters.configFile]);
    expect(refusedCopy.output).toMatch(/already has rows on the replica[\s\S]*fix: empty it/);
    for (const replica of clusters.replicas) await replica.query('TRUNCATE items');
    const attached = await lockstep(['attach', '--config', clusters.configFile]);
    expect(attached.code).toBe(0);
    const again = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query(`INSERT INTO items VALUES (52, 'streamed')`);
      await eventually(async () => {
        for (const replica of clusters.replicas)
          if ((await replica.query('SELECT 1 FROM items WHERE id = 52')).length === 0) return false;
        return true;
      }, 'streaming again to both replicas');
      await expectIdentical(clusters.primary, clusters.replicas, ['items']);
      // --force ends a running sidecar's stream and detaches.
      const forced = await lockstep(['detach', '--config', clusters.configFile, '--force']);
      expect(forced.code).toBe(0);
      expect(await slots(clusters.primary)).toEqual([]);
    } finally {
      again.kill('SIGTERM');
      await again.exited;
    }
  });
});
