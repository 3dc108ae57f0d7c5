import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE orders (id serial PRIMARY KEY, v text);
           CREATE TABLE "Order Lines" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
           CREATE TABLE "Audit" (id serial PRIMARY KEY);
           CREATE TABLE meas (id bigserial, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
           CREATE TABLE meas_low PARTITION OF meas FOR VALUES FROM (0) TO (100);`,
  seed: `INSERT INTO orders (v) SELECT 'o' || g FROM generate_series(1, 5) g;
         INSERT INTO "Order Lines" (v) SELECT 'l' || g FROM generate_series(1, 7) g;
         INSERT INTO "Audit" DEFAULT VALUES;
         INSERT INTO meas (k) SELECT g FROM generate_series(1, 9) g;`,
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

  it('include a serial of a partitioned parent, whose partitions are what is published', async () => {
    const [published] = await clusters.primary.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_publication_tables WHERE tablename = 'meas'`,
    );
    expect(published?.n).toBe('0');
    for (const replica of clusters.replicas)
      expect(await lastValue(replica, 'meas_id_seq')).toBe(9);
  });

  it('are copied while a TRUNCATE … RESTART IDENTITY holds one of them, on the primary or a replica', async () => {
    const r1 = clusters.replicas[0] as PostgresCluster;
    // Both held ones sort before orders: met first, on the primary ("Audit") and on the replica.
    const truncating = new pg.Client({ connectionString: clusters.primary.url });
    truncating.on('error', () => undefined);
    await truncating.connect();
    let sidecar: LockstepProcess | null = null;
    try {
      await truncating.query(`BEGIN; TRUNCATE "Audit" RESTART IDENTITY`);
      await r1.query(`BEGIN; TRUNCATE "Order Lines" RESTART IDENTITY; PREPARE TRANSACTION 'held'`);
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await clusters.primary.query(
        `INSERT INTO orders (v) SELECT 'q' || g FROM generate_series(1, 10) g`,
      );
      const primary = await lastValue(clusters.primary, 'orders_id_seq');
      await eventually(
        async () => (await lastValue(r1, 'orders_id_seq')) >= primary,
        'the replica to follow the sequence nobody holds',
      );
      // The held ones are reported, each naming its node and sequence, and copying goes on.
      const reported = (node: string) => sidecar?.events('sequence-sync-failed', { node }) ?? [];
      await eventually(
        async () => reported('replica1').length > 0 && reported('primary').length > 0,
        'the held sequences reported',
      );
      expect(String(reported('replica1')[0]?.err)).toContain('public.Order Lines_id_seq');
      expect(String(reported('primary')[0]?.err)).toContain('public.Audit_id_seq');
    } finally {
      await r1.query(`ROLLBACK PREPARED 'held'`).catch(() => undefined);
      await truncating.end();
      if (sidecar) {
        sidecar.kill('SIGTERM');
        expect(await sidecar.exited).toBe(0);
      }
    }
  });

  it('fail attach, naming it, while an open transaction holds a primary sequence', async () => {
    const holding = new pg.Client({ connectionString: clusters.primary.url });
    holding.on('error', () => undefined);
    await holding.connect();
    try {
      await holding.query(`BEGIN; ALTER SEQUENCE orders_id_seq RESTART WITH 5000`);
      const attached = await lockstep(['attach', '--config', clusters.configFile]);
      expect(attached.code).not.toBe(0);
      expect(attached.output).toContain('public.orders_id_seq');
    } finally {
      await holding.end();
    }
  });
});
