import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { expectIdentical, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
           CREATE SCHEMA shop;`,
  config: { twoPhase: { captureDdl: true }, tables: ['public.*', 'shop.*'] },
});

/** Columns and indexes of every user table: what must end up identical. */
const schemaOf = async (node: PostgresCluster) =>
  node.query(
    `SELECT n.nspname, c.relname, c.relkind,
            (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
               FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('public', 'shop') AND c.relkind IN ('r', 'i')
      ORDER BY 1, 2`,
  );

describe('captured DDL (twoPhase.captureDdl)', () => {
  it('CREATE TABLE, ALTER TABLE, CREATE INDEX and DROP on the primary, interleaved with writes, end up identical on the replicas', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const p = clusters.primary;
    try {
      await p.query('CREATE TABLE gadgets (id int PRIMARY KEY, name text NOT NULL)');
      await p.query(`INSERT INTO gadgets SELECT g, 'g' || g FROM generate_series(1, 50) g`);
      await p.query('ALTER TABLE gadgets ADD COLUMN price numeric(10,2) DEFAULT 1.50');
      await p.query(`INSERT INTO gadgets VALUES (51, 'priced', 9.99)`);
      await p.query('CREATE INDEX gadgets_name ON gadgets (name)');
      await p.query(`UPDATE gadgets SET price = price * 2 WHERE id % 5 = 0`);
      await p.query('CREATE INDEX CONCURRENTLY gadgets_price ON gadgets (price)');
      // DDL and writes in one transaction, with a search_path.
      await p.query(`BEGIN;
        SET LOCAL search_path = shop;
        CREATE TABLE orders (id int PRIMARY KEY, gadget int, qty int);
        INSERT INTO orders VALUES (1, 1, 3), (2, 51, 1);
        ALTER TABLE orders RENAME COLUMN qty TO quantity;
        INSERT INTO orders VALUES (3, 2, 7);
        COMMIT;`);
      await p.query('CREATE TABLE scratch (id int PRIMARY KEY)');
      await p.query('INSERT INTO scratch VALUES (1)');
      await p.query('DROP TABLE scratch');
      await p.query('DROP INDEX gadgets_name');
      await p.query(`DELETE FROM gadgets WHERE id > 45`);
      await waitForMarker(p, clusters.replicas);

      const expected = await schemaOf(p);
      for (const replica of clusters.replicas) expect(await schemaOf(replica)).toEqual(expected);
      await expectIdentical(p, clusters.replicas, ['gadgets', 'shop.orders']);
      expect(await preparedGids([p, ...clusters.replicas])).toEqual([]);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    // detach removes the event trigger.
    expect((await lockstep(['detach', '--config', clusters.configFile])).code).toBe(0);
    expect(
      await p.query(`SELECT 1 FROM pg_event_trigger WHERE evtname = 'lockstep_capture_ddl'`),
    ).toEqual([]);
  });
});
