import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

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
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = [
  '"My Schema"."Order"',
  '"drop table"',
  '"ünïcødé"."zähler"',
  'full_identity',
  'marker',
];
const ROW = `(1, 'a', 123456789012345678901234567890.123456789012345, '2026-11-25 10:11:12.123456+00',
  '{"b": [1, 2.50, null], "a": "ü\\"x"}', '\\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 42, 9223372036854775807, 1.0000000000000002,
  '1 day 00:00:00.000001', repeat(md5('x'), 300))`;

const clusters = useClusters({ replicas: 2 });
let config: ReturnType<typeof writeConfig>;

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  // One row before attach (travels by COPY), the rest after (travels by the stream).
  await clusters.primary.query(`INSERT INTO "My Schema"."Order" VALUES ${ROW}`);
  config = writeConfig(clusters.primary, clusters.replicas, { tables: ['*.*'] });
  expect((await lockstep(['attach', '--config', config.file])).code).toBe(0);
});
afterAll(() => config?.remove());

describe('values and identifiers through copy and stream', () => {
  it('replicates every type and awkward identifier losslessly, row by row', async () => {
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await clusters.primary.query(
        `INSERT INTO "My Schema"."Order" VALUES ${ROW.replace('(1,', '(2,')}`,
      );
      await clusters.primary.query(
        `INSERT INTO "My Schema"."Order" ("Id", "select") VALUES (3, NULL)`,
      );
      // Unchanged TOAST (doc) must stay; NULL must become NULL.
      await clusters.primary.query(
        `UPDATE "My Schema"."Order" SET "select" = 'changed' WHERE "Id" IN (1, 2)`,
      );
      await clusters.primary.query(
        `UPDATE "My Schema"."Order" SET doc = NULL, e = 'sad' WHERE "Id" = 2`,
      );
      await clusters.primary.query(`UPDATE "My Schema"."Order" SET "Id" = 30 WHERE "Id" = 3`);
      // A key change sends the old key tuple (NULLs elsewhere): the unchanged TOASTed doc must stay, not become NULL.
      await clusters.primary.query(`UPDATE "My Schema"."Order" SET "Id" = 10 WHERE "Id" = 1`);
      // Characters COPY's text format reads specially (rows are added with COPY), and its NULL marker as text.
      await clusters.primary.query(
        `INSERT INTO "drop table" VALUES (1, 'x'), (2, 'y'), (3, E'tab\\there\\nline\\rcr \\\\ back'),
           (4, '\\N'), (5, ''); DELETE FROM "drop table" WHERE id = 1`,
      );
      await clusters.primary.query(
        `INSERT INTO "ünïcødé"."zähler" VALUES ('ä', 1), ('ö', 2); UPDATE "ünïcødé"."zähler" SET wert = wert + 1`,
      );
      await clusters.primary.query(
        `INSERT INTO full_identity VALUES (1, '{"a": 1}'), (1, '{"a": 1}'), (2, NULL);
         UPDATE full_identity SET v = '{"b": 2}' WHERE k = 2;
         DELETE FROM full_identity WHERE ctid = (SELECT ctid FROM full_identity WHERE k = 1 LIMIT 1);`,
      );
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      const [kept] = await (clusters.replicas[0] as (typeof clusters.replicas)[number]).query<{
        len: number;
      }>(`SELECT length(doc) AS len FROM "My Schema"."Order" WHERE "Id" = 10`);
      expect(kept?.len).toBe(32 * 300);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
