import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE orders (id serial PRIMARY KEY, v text);
           CREATE TABLE "Order Lines" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
           CREATE TABLE "Audit" (id serial PRIMARY KEY);`,
  seed: `INSERT INTO orders (v) SELECT 'o' || g FROM generate_series(1, 5) g;
         INSERT INTO "Order Lines" (v) SELECT 'l' || g FROM generate_series(1, 7) g;
         INSERT INTO "Audit" DEFAULT VALUES;`,
  config: { sequenceSyncMs: 300 },
});

const SEQUENCES = ['orders_id_seq', 'Order Lines_id_seq'];
const lastValue = async (node: PostgresCluster, sequence: string) =>
  Number(
    (
      await node.query<{ v: string | null }>(
        `SELECT last_value::text AS v FROM pg_sequences WHERE schemaname = 'public' AND sequencename = $1`,
        [sequence],
      )
    )[0]?.v ?? 0,
  );

describe('sequences of replicated tables', () => {
  it('are copied at attach and kept up by the sidecar, never moving a replica backwards', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    for (const sequence of SEQUENCES) {
      const primary = await lastValue(clusters.primary, sequence);
      expect(primary).toBeGreaterThan(0);
      for (const replica of [r1, r2]) expect(await lastValue(replica, sequence)).toBe(primary);
    }
    // A replica that is ahead (e.g. used by hand) is not moved back.
    await r2.query(`SELECT setval('orders_id_seq', 1000)`);
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query(
        `INSERT INTO orders (v) SELECT 'p' || g FROM generate_series(1, 20) g`,
      );
      await clusters.primary.query(`INSERT INTO "Order Lines" (v) VALUES ('more')`);
      await eventually(
        async () =>
          (await lastValue(r1, 'orders_id_seq')) === 25 &&
          (await lastValue(r1, 'Order Lines_id_seq')) === 8 &&
          (await lastValue(r2, 'Order Lines_id_seq')) === 8,
        'the replicas to follow the primary sequences',
      );
      expect(await lastValue(r2, 'orders_id_seq')).toBe(1000);
      // A replica promoted now would not hand out a used key.
      const [next] = await r1.query<{ id: number }>(
        `INSERT INTO orders (v) VALUES ('promoted') RETURNING id`,
      );
      expect(next?.id).toBe(26);
      await r1.query(`DELETE FROM orders WHERE v = 'promoted'`);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });

  it('are copied while a TRUNCATE … RESTART IDENTITY holds one of them, on the primary or a replica', async () => {
    const r1 = clusters.replicas[0] as PostgresCluster;
    // Both held ones sort before orders: met first, on the primary ("Audit") and on the replica.
    const truncating = new pg.Client({ connectionString: clusters.primary.url });
    await truncating.connect();
    await truncating.query(`BEGIN; TRUNCATE "Audit" RESTART IDENTITY`);
    await r1.query(`BEGIN; TRUNCATE "Order Lines" RESTART IDENTITY; PREPARE TRANSACTION 'held'`);
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query(
        `INSERT INTO orders (v) SELECT 'q' || g FROM generate_series(1, 10) g`,
      );
      const primary = await lastValue(clusters.primary, 'orders_id_seq');
      await eventually(
        async () => (await lastValue(r1, 'orders_id_seq')) >= primary,
        'the replica to follow the sequence nobody holds',
      );
      // The held one is reported, naming it, and copying goes on.
      await eventually(
        async () => sidecar.events('sequence-sync-failed', { replica: 'replica1' }).length > 0,
        'the held sequence reported',
      );
      const [failure] = sidecar.events('sequence-sync-failed', { replica: 'replica1' });
      expect(String(failure?.err)).toContain('public.Order Lines_id_seq');
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      await r1.query(`ROLLBACK PREPARED 'held'`);
      await truncating.query('ROLLBACK');
      await truncating.end();
    }
  });
});
