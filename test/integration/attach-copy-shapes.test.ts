import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { expectIdentical } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

/** Table shapes a load must copy once and leave defined exactly as they were. */
const SCHEMA = `
  CREATE SCHEMA "Odd ""Schema";
  CREATE TABLE base (id int PRIMARY KEY, v text);
  CREATE TABLE heir (extra int) INHERITS (base);
  ALTER TABLE heir ADD CONSTRAINT heir_pkey PRIMARY KEY (id);
  CREATE TABLE "Odd ""Schema"."Mixed Tab" ("Id" int CONSTRAINT "pk ""q""" PRIMARY KEY,
    "The Val" text, gone int, g int GENERATED ALWAYS AS ("Id" * 2) STORED, parent int);
  ALTER TABLE "Odd ""Schema"."Mixed Tab" DROP COLUMN gone;
  CREATE UNIQUE INDEX "Uniq ""Val""" ON "Odd ""Schema"."Mixed Tab" ("The Val") INCLUDE (g)
    NULLS NOT DISTINCT WITH (fillfactor = 70);
  ALTER TABLE "Odd ""Schema"."Mixed Tab" ADD CONSTRAINT "self fk" FOREIGN KEY (parent)
    REFERENCES "Odd ""Schema"."Mixed Tab" ("Id") DEFERRABLE INITIALLY DEFERRED;
  CREATE TABLE cross_ref (id int PRIMARY KEY,
    m int CONSTRAINT cross_m_fk REFERENCES "Odd ""Schema"."Mixed Tab" ("Id") ON DELETE CASCADE,
    c int CONSTRAINT c_check CHECK (c > 0));
  ALTER TABLE cross_ref ADD CONSTRAINT c_not_valid CHECK (c < 1000) NOT VALID;
  CREATE INDEX stats_idx ON cross_ref ((c + 1));
  ALTER INDEX stats_idx ALTER COLUMN 1 SET STATISTICS 500;
  CREATE TABLE meas (id int, at date, v int CONSTRAINT meas_v_fk REFERENCES cross_ref (id),
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE meas_a PARTITION OF meas FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
  CREATE TABLE meas_b PARTITION OF meas FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
  CREATE INDEX meas_v ON meas (v);
  CREATE INDEX meas_a_own ON meas_a (v DESC) WITH (fillfactor = 70);
  CREATE TABLE ident (id int NOT NULL, k int NOT NULL,
    CONSTRAINT ident_pkey PRIMARY KEY (id) DEFERRABLE);
  CREATE UNIQUE INDEX ident_k ON ident (k);
  ALTER TABLE ident REPLICA IDENTITY USING INDEX ident_k;
  CREATE TABLE full_ident (a int, b text);
  ALTER TABLE full_ident REPLICA IDENTITY FULL;
  CREATE INDEX full_ident_a ON full_ident (a);`;

const DATA = `
  INSERT INTO base SELECT g, 'b' || g FROM generate_series(1, 100) g;
  INSERT INTO heir SELECT g, 'h' || g, g FROM generate_series(101, 150) g;
  INSERT INTO "Odd ""Schema"."Mixed Tab" ("Id", "The Val", parent)
    SELECT g, CASE WHEN g > 1 THEN 'v' || g END, NULLIF(g - 1, 0) FROM generate_series(1, 300) g;
  INSERT INTO cross_ref SELECT g, g, g FROM generate_series(1, 50) g;
  INSERT INTO meas SELECT g, DATE '2020-01-01' + g, 1 + g % 50 FROM generate_series(1, 700) g;
  INSERT INTO ident SELECT g, -g FROM generate_series(1, 80) g;
  INSERT INTO full_ident SELECT g % 7, 'x' FROM generate_series(1, 90) g;`;

const TABLES = [
  'base',
  'ONLY base',
  'heir',
  '"Odd ""Schema"."Mixed Tab"',
  'cross_ref',
  'meas_a',
  'meas_b',
  'ident',
  'full_ident',
];

/** Everything about indexes and constraints a load could lose, in every user schema. */
async function shapeOf(node: PostgresCluster): Promise<string[]> {
  const indexes = await node.query<{ d: string }>(
    `SELECT format('%s %s clustered=%s replident=%s opts=%s stats=%s comment=%s', i.indexrelid::regclass,
                   pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident, c.reloptions,
                   (SELECT array_agg(a.attstattarget ORDER BY a.attnum) FROM pg_attribute a
                     WHERE a.attrelid = i.indexrelid),
                   obj_description(i.indexrelid, 'pg_class')) AS d
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'lockstep', 'pg_toast')
      ORDER BY 1`,
  );
  const constraints = await node.query<{ d: string }>(
    `SELECT format('%s %s %s valid=%s deferrable=%s deferred=%s inherited=%s comment=%s',
                   c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid), c.convalidated,
                   c.condeferrable, c.condeferred, c.conparentid <> 0,
                   obj_description(c.oid, 'pg_constraint')) AS d
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'lockstep')
      ORDER BY 1`,
  );
  const tables = await node.query<{ d: string }>(
    `SELECT format('%s identity=%s owner=%s', c.oid::regclass, c.relreplident, c.relowner::regrole) AS d
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'lockstep')
      ORDER BY 1`,
  );
  return [...indexes, ...constraints, ...tables].map((r) => r.d);
}

describe('attach copies unusual table shapes once, with their definitions intact', () => {
  it('copies inheritance, partitions, quoted names, identities and keeps every definition', async () => {
    const { primary } = clusters;
    for (const node of [primary, ...clusters.replicas]) await node.query(SCHEMA);
    await primary.query(DATA);
    const before = await Promise.all(clusters.replicas.map(shapeOf));
    const config = writeConfig(primary, clusters.replicas, {
      tables: ['public.*', '"Odd ""Schema".*'],
    });
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.output).not.toMatch(/error/i);
      expect(attached.code).toBe(0);
      expect(await Promise.all(clusters.replicas.map(shapeOf))).toEqual(before);
      await expectIdentical(primary, clusters.replicas, TABLES);
    } finally {
      config.remove();
    }
  });
});
