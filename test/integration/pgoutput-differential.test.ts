import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { PgoutputDecoder } from '../../adapters/postgres/source/pgoutput-decoder.js';
import { isUnchangedToast } from '../../plugin/protocol/index.js';
import { CAPTURE_END_PREFIX, captureXLogData } from '../support/pgoutput-capture.js';
import { type Common, fromLibrary, fromLockstep, Oracle } from '../support/pgoutput-oracle.js';
import { createFeed } from '../support/stream-session.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters();

const S = '"Diff Ü"';

/** Every column type lockstep replicates, with a value that is awkward for it. */
const TYPED: [name: string, type: string, value: string][] = [
  ['b', 'bool', 'true'],
  ['i2', 'smallint', '-32768'],
  ['i4', 'int', '2147483647'],
  ['i8', 'bigint', '-9223372036854775808'],
  ['n', 'numeric', '123456789012345678901234567890.123456789012345'],
  ['n2', 'numeric(10,2)', '12.3'],
  ['ninf', 'numeric', `'Infinity'`],
  ['f4', 'real', `'-Infinity'`],
  ['f8', 'float8', '1.0000000000000002'],
  ['fnan', 'float8', `'NaN'`],
  ['cash', 'money', '12.34'],
  ['t', 'text', `'ä'`],
  ['t8', 'text', `'abcdefgh'`],
  ['t9', 'text', `'abcdefghi'`],
  ['"select"', 'text', `E'emoji 🎉 ünï 𝄞 e\\u0301 tab\\t nl\\n'`],
  ['vc', 'varchar(5)', `'äöü'`],
  ['ch', 'char(3)', `'a'`],
  ['nm', 'name', `'pg_class'`],
  ['c1', '"char"', `'x'`],
  ['by', 'bytea', `'\\x00ff10'`],
  ['j', 'json', `'{"b": [1, 2.50, null], "a": "ü\\"x"}'`],
  ['jb', 'jsonb', `'{"b": [1, 2.50, null], "a": "ü\\"x"}'`],
  ['u', 'uuid', `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`],
  ['ts', 'timestamp', `'2026-11-25 10:11:12.123456'`],
  ['tstz', 'timestamptz', `'2026-11-25 10:11:12.123456+05:30'`],
  ['tsinf', 'timestamptz', `'-infinity'`],
  ['d', 'date', `'4713-01-01 BC'`],
  ['tm', 'time', `'23:59:59.999999'`],
  ['tmtz', 'timetz', `'10:11:12+02'`],
  ['iv', 'interval', `'1 year 2 mons -3 days 04:05:06.000007'`],
  ['ai', 'int[]', `'{1,NULL,3}'`],
  ['a2', 'int[][]', `'{{1,2},{3,4}}'`],
  ['at', 'text[]', `'{"a b","c,d",NULL,"","ü"}'`],
  ['am', `${S}.mood[]`, `'{sad,happy}'`],
  ['e', `${S}.mood`, `'ünï'`],
  ['dom', `${S}.posint`, '42'],
  ['comp', `${S}.pair`, `'(1,"x y")'`],
  ['ip', 'inet', `'2001:db8::1/64'`],
  ['net', 'cidr', `'10.0.0.0/8'`],
  ['mac', 'macaddr', `'08:00:2b:01:02:03'`],
  ['bits', 'bit(4)', `B'1010'`],
  ['vb', 'varbit', `B'101'`],
  ['pt', 'point', `'(1.5,-2)'`],
  ['rng', 'int4range', `'[1,10)'`],
  ['tsr', 'tstzrange', `'[2026-01-01,infinity)'`],
  ['tsv', 'tsvector', `'a:1 fat:2 cat:3'`],
  ['o', 'oid', '4294967295'],
  ['l', 'pg_lsn', `'16/B374D848'`],
];

const SCHEMA = `
  CREATE SCHEMA ${S};
  CREATE TYPE ${S}.mood AS ENUM ('sad', 'happy', 'ünï');
  CREATE DOMAIN ${S}.posint AS int CHECK (VALUE > 0);
  CREATE TYPE ${S}.pair AS (a int, b text);
  CREATE TABLE ${S}."Types" (id int PRIMARY KEY, ${TYPED.map(([n, t]) => `${n} ${t}`).join(', ')});
  CREATE TABLE ${S}.toasty (id int PRIMARY KEY, note text, doc text, big text, blob bytea);
  ALTER TABLE ${S}.toasty ALTER doc SET STORAGE EXTERNAL, ALTER big SET STORAGE EXTERNAL,
    ALTER blob SET STORAGE EXTERNAL;
  CREATE TABLE ${S}.toasty_full (k int, note text, doc text);
  ALTER TABLE ${S}.toasty_full ALTER doc SET STORAGE EXTERNAL, REPLICA IDENTITY FULL;
  CREATE TABLE ${S}.by_index (id int NOT NULL, code text NOT NULL, v text);
  CREATE UNIQUE INDEX by_index_code ON ${S}.by_index (code);
  ALTER TABLE ${S}.by_index REPLICA IDENTITY USING INDEX by_index_code;
  CREATE TABLE ${S}.parent (id serial PRIMARY KEY, v text);
  CREATE TABLE ${S}.child (id int PRIMARY KEY, parent_id int REFERENCES ${S}.parent);
  SELECT pg_replication_origin_create('diff_origin');`;
const TABLES = ['Types', 'toasty', 'toasty_full', 'by_index', 'parent', 'child'];

/** About 1.3 MB of incompressible text, and 16 kB of bytes: out of line, over many socket reads. */
const BIG = `(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 40000) g)`;
const BLOB = `(SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 1000) g)`;

/** One statement (or explicit transaction) per entry, in stream order. */
const WORKLOAD = [
  // Every type; all NULL; empty values; a 2,000-row transaction (lockstep does not stream in-progress ones).
  `INSERT INTO ${S}."Types" (id, ${TYPED.map(([n]) => n).join(', ')}) VALUES (1, ${TYPED.map(([, , v]) => v).join(', ')})`,
  `INSERT INTO ${S}."Types" (id) VALUES (2)`,
  `INSERT INTO ${S}."Types" (id, t, t8, "select", at, by, j, jb) VALUES (3, '', '', '', '{}', '\\x', '""', '{}')`,
  `INSERT INTO ${S}."Types" (id, t, n, tstz) SELECT g, repeat('ü', g % 20), g * 1.5, now() FROM generate_series(100, 2099) g`,
  `UPDATE ${S}."Types" SET "select" = 'changed' WHERE id = 1`,
  `UPDATE ${S}."Types" SET id = 10 WHERE id = 1`,
  `DELETE FROM ${S}."Types" WHERE id = 2`,
  // Unchanged TOAST: identity DEFAULT (with and without a key change) and FULL.
  `INSERT INTO ${S}.toasty VALUES (1, 'n', repeat(md5('x'), 300), ${BIG}, ${BLOB})`,
  `UPDATE ${S}.toasty SET note = 'n2' WHERE id = 1`,
  `UPDATE ${S}.toasty SET id = 2 WHERE id = 1`,
  `UPDATE ${S}.toasty SET doc = NULL WHERE id = 2`,
  `DELETE FROM ${S}.toasty WHERE id = 2`,
  `INSERT INTO ${S}.toasty VALUES (3, 'kept', repeat(md5('z'), 300), NULL, NULL)`,
  `INSERT INTO ${S}.toasty_full VALUES (1, 'a', repeat(md5('y'), 300)), (2, NULL, NULL)`,
  `UPDATE ${S}.toasty_full SET note = 'b' WHERE k = 1`,
  `DELETE FROM ${S}.toasty_full WHERE k = 1`,
  // A key that is not the first column.
  `INSERT INTO ${S}.by_index VALUES (1, 'x', 'a'); UPDATE ${S}.by_index SET code = 'y';
   UPDATE ${S}.by_index SET v = 'c'; DELETE FROM ${S}.by_index`,
  // Relation changes between and inside transactions.
  `ALTER TABLE ${S}."Types" ADD COLUMN extra text DEFAULT 'dflt'`,
  `INSERT INTO ${S}."Types" (id) VALUES (4)`,
  `BEGIN; ALTER TABLE ${S}."Types" DROP COLUMN i2; INSERT INTO ${S}."Types" (id, t) VALUES (5, 'x');
   ALTER TABLE ${S}."Types" RENAME COLUMN t TO t_renamed; UPDATE ${S}."Types" SET t_renamed = 'r' WHERE id = 5;
   COMMIT`,
  `ALTER TABLE ${S}."Types" ALTER vc TYPE varchar(10); UPDATE ${S}."Types" SET vc = 'zehn zeich' WHERE id = 4`,
  `ALTER TABLE ${S}."Types" REPLICA IDENTITY FULL`,
  `UPDATE ${S}."Types" SET extra = NULL WHERE id = 5; DELETE FROM ${S}."Types" WHERE id = 5`,
  // TRUNCATE: CASCADE, RESTART IDENTITY, both, several tables.
  `INSERT INTO ${S}.parent (v) VALUES ('p'); INSERT INTO ${S}.child VALUES (1, 1)`,
  `TRUNCATE ${S}.parent CASCADE`,
  `TRUNCATE ${S}.parent, ${S}.child RESTART IDENTITY`,
  `TRUNCATE ${S}.toasty, ${S}.by_index`,
  `TRUNCATE ${S}.parent RESTART IDENTITY CASCADE`,
  // Logical messages: transactional (alone and with a change), not, and not inside a rolled-back transaction.
  `BEGIN; INSERT INTO ${S}.parent (v) VALUES ('m'); SELECT pg_logical_emit_message(true, 'lockstep.two_phase', ''); COMMIT`,
  `SELECT pg_logical_emit_message(true, 'diff.ünï', 'äöü 🎉')`,
  `SELECT pg_logical_emit_message(true, 'diff.bytes', '\\xc3a4e282ac'::bytea)`,
  `SELECT pg_logical_emit_message(false, 'diff.now', 'x')`,
  `BEGIN; SELECT pg_logical_emit_message(false, 'diff.rolled-back', 'kept'); INSERT INTO ${S}.parent (v) VALUES ('gone'); ROLLBACK`,
  // A transaction with a replication origin (an Origin message after its BEGIN).
  `SELECT pg_replication_origin_session_setup('diff_origin');
   BEGIN; INSERT INTO ${S}.parent (v) VALUES ('from origin'); COMMIT;
   SELECT pg_replication_origin_session_reset()`,
  `SELECT pg_logical_emit_message(false, '${CAPTURE_END_PREFIX}', '')`,
];

describe('pgoutput decoder against pg-logical-replication (real Postgres)', () => {
  it('decodes a captured stream as the library does, message by message and value by value', async () => {
    await clusters.primary.query(SCHEMA);
    const feed = await createFeed(
      clusters.primary.url,
      TABLES.map((name) => ({ schema: 'Diff Ü', name })),
    );
    try {
      for (const sql of WORKLOAD) await clusters.primary.query(sql);
      const captured = await captureXLogData(clusters.primary.url, feed);

      const oracle = new Oracle();
      const library = captured.map(({ payload }) => oracle.parse(payload));
      const expected = library.map(fromLibrary);
      // As PgoutputSource decodes (rows point into the connection's buffers), and with rows copied out.
      const inPlace = new PgoutputDecoder();
      const copying = new PgoutputDecoder();
      captured.forEach(({ buf, start, end, payload }, i) => {
        const what = `message ${i} (${library[i]?.tag})`;
        const kept = fromLockstep(inPlace.decode(buf, start, end, true));
        expect(kept, `${what}, decoded in place`).toEqual(expected[i]);
        expect(fromLockstep(copying.decode(payload)), `${what}, copied`).toEqual(expected[i]);
      });

      expectCoverage(
        library,
        expected,
        captured.map((c) => c.payload.length),
      );
    } finally {
      await feed.drop();
    }
  });
});

/** What the workload must have produced, so the comparison above cannot pass on less. */
function expectCoverage(library: Pgoutput.Message[], common: Common[], sizes: number[]): void {
  expect(new Set(library.map((m) => m.tag))).toEqual(
    new Set([
      'begin',
      'relation',
      'type',
      'origin',
      'insert',
      'update',
      'delete',
      'truncate',
      'message',
      'commit',
    ]),
  );
  const rows = common.flatMap((m) => (m?.kind === 'insert' || m?.kind === 'update' ? [m] : []));
  const everyType = rows.find((m) => m.kind === 'insert' && m.row[0] === '1');
  expect(everyType?.row.every((v) => typeof v === 'string')).toBe(true);
  const toasted = rows.filter((m) => m.kind === 'update' && m.row.some(isUnchangedToast));
  expect(toasted.some((m) => m.kind === 'update' && m.key === null)).toBe(true);
  expect(toasted.some((m) => m.kind === 'update' && m.key !== null)).toBe(true);
  expect(Math.max(...sizes)).toBeGreaterThan(1_000_000);
  const truncates = common.flatMap((m) => (m?.kind === 'truncate' ? [m] : []));
  expect(truncates.some((m) => m.cascade && m.relations.length === 2)).toBe(true);
  expect(truncates.some((m) => m.restartIdentity && !m.cascade)).toBe(true);
  expect(truncates.some((m) => m.restartIdentity && m.cascade)).toBe(true);
  const messages = common.flatMap((m) => (m?.kind === 'message' ? [m] : []));
  expect(new Set(messages.map((m) => m.transactional))).toEqual(new Set([true, false]));
  const typesShapes = new Set(
    common.flatMap((m) =>
      m?.kind === 'relation' && m.relation.name === 'Types'
        ? [JSON.stringify([m.relation.columns, m.relation.replicaIdentity])]
        : [],
    ),
  );
  expect(typesShapes.size).toBeGreaterThanOrEqual(4);
}
