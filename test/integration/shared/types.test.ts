import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { expectIdentical } from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';

const SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'happy');
  CREATE DOMAIN posint AS int CHECK (VALUE > 0);
  CREATE SCHEMA "My Schema";
  CREATE TABLE "My Schema"."Order" ("Id" int PRIMARY KEY, "select" text, n numeric, ts timestamptz, j jsonb,
    b bytea, a int[], ta text[], u uuid, e mood, d posint, i8 bigint, f8 float8, iv interval, doc text);
  ALTER TABLE "My Schema"."Order" ALTER COLUMN doc SET STORAGE EXTERNAL;
  CREATE TABLE "drop table" (id int PRIMARY KEY, "from" text);
  CREATE SCHEMA "ünïcødé"; CREATE TABLE "ünïcødé"."zähler" ("schlüssel" text PRIMARY KEY, wert int);
  CREATE TABLE full_identity (k int, v json); ALTER TABLE full_identity REPLICA IDENTITY FULL;
  CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = [
  '"My Schema"."Order"',
  '"drop table"',
  '"ünïcødé"."zähler"',
  'full_identity',
  'parent',
  'child',
  'marker',
];
const ROW = `(1, 'a', 123456789012345678901234567890.123456789012345, '2026-11-25 10:11:12.123456+00',
  '{"b": [1, 2.50, null], "a": "ü\\"x"}', '\\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 42, 9223372036854775807, 1.0000000000000002,
  '1 day 00:00:00.000001', repeat(md5('x'), 300))`;

describe.each(transports)('values and identifiers through copy and stream (%s)', (transport) => {
  const replication = useReplication(transport, {
    replicas: 2,
    schema: SCHEMA,
    // One row before attach (travels by COPY), the rest after (travels by the stream).
    seed: `INSERT INTO "My Schema"."Order" VALUES ${ROW};
      INSERT INTO parent SELECT generate_series(1, 10); INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;`,
    config: { tables: ['*.*'] },
  });
  const primary = () => replication.primary;

  it('replicates every type and awkward identifier losslessly, row by row', async () => {
    replication.start();
    await primary().query(`INSERT INTO "My Schema"."Order" VALUES ${ROW.replace('(1,', '(2,')}`);
    await primary().query(`INSERT INTO "My Schema"."Order" ("Id", "select") VALUES (3, NULL)`);
    // Unchanged TOAST (doc) must stay; NULL must become NULL.
    await primary().query(
      `UPDATE "My Schema"."Order" SET "select" = 'changed' WHERE "Id" IN (1, 2)`,
    );
    await primary().query(`UPDATE "My Schema"."Order" SET doc = NULL, e = 'sad' WHERE "Id" = 2`);
    await primary().query(`UPDATE "My Schema"."Order" SET "Id" = 30 WHERE "Id" = 3`);
    // A key change sends the old key tuple (NULLs elsewhere): the unchanged TOASTed doc must stay, not become NULL.
    await primary().query(`UPDATE "My Schema"."Order" SET "Id" = 10 WHERE "Id" = 1`);
    // Characters COPY's text format reads specially (rows are added with COPY), and its NULL marker as text.
    await primary().query(
      `INSERT INTO "drop table" VALUES (1, 'x'), (2, 'y'), (3, E'tab\\there\\nline\\rcr \\\\ back'),
         (4, '\\N'), (5, ''); DELETE FROM "drop table" WHERE id = 1`,
    );
    await primary().query(
      `INSERT INTO "ünïcødé"."zähler" VALUES ('ä', 1), ('ö', 2); UPDATE "ünïcødé"."zähler" SET wert = wert + 1`,
    );
    await replication.converged();
    await expectIdentical(primary(), replication.replicas, TABLES);
    const [kept] = await (replication.replicas[0] as PostgresCluster).query<{ len: number }>(
      `SELECT length(doc) AS len FROM "My Schema"."Order" WHERE "Id" = 10`,
    );
    expect(kept?.len).toBe(32 * 300);
  });

  it('applies REPLICA IDENTITY FULL updates and deletes to one of two identical rows', async () => {
    replication.start();
    await primary().query(
      `INSERT INTO full_identity VALUES (1, '{"a": 1}'), (1, '{"a": 1}'), (2, NULL);
       UPDATE full_identity SET v = '{"b": 2}' WHERE k = 2;
       DELETE FROM full_identity WHERE ctid = (SELECT ctid FROM full_identity WHERE k = 1 LIMIT 1);`,
    );
    await replication.converged();
    await expectIdentical(primary(), replication.replicas, TABLES);
    expect(
      await (replication.replicas[1] as PostgresCluster).query(
        'SELECT k FROM full_identity ORDER BY k',
      ),
    ).toEqual([{ k: 1 }, { k: 2 }]);
  });

  it('applies a TRUNCATE of several tables at once, and the rows written after it', async () => {
    replication.start();
    // The primary's CASCADE reaches child: the stream lists both tables.
    await primary().query('TRUNCATE parent CASCADE');
    await primary().query('INSERT INTO parent VALUES (100); INSERT INTO child VALUES (100, 100)');
    await replication.converged();
    await expectIdentical(primary(), replication.replicas, TABLES);
    expect(
      await (replication.replicas[0] as PostgresCluster).query('SELECT id FROM child'),
    ).toEqual([{ id: 100 }]);
  });
});
