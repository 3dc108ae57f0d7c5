import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { copyFormatFacts } from '../../adapters/postgres/setup/copy-format.js';
import { expectIdentical } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

const TYPES = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN posint AS int CHECK (VALUE > 0);
  CREATE TYPE pair AS (a int, b text);`;

/** Built-in types only: copied in binary. */
const BUILTIN = `
  CREATE TABLE builtin_types (id int PRIMARY KEY, i2 int2, i8 int8, n numeric(12, 3), nn numeric,
    f4 float4, f8 float8, t text, c char(5), vc varchar(10), b bytea, ok bool, d date,
    ts timestamptz, tsl timestamp, iv interval, u uuid, j json, jb jsonb, ia int[], ta text[],
    ip inet, m money, bits bit varying(8), tr tstzrange, x xml, o oid)`;

/**
 * Each column but id and t of a type whose binary form differs between nodes,
 * or that has none (aclitem, inside a built-in array type).
 */
const USER_COLUMNS = ['m', 'ms', 'p', 'pr', 'rc', 'rcs', 'acl'];
const USER = `
  CREATE TABLE user_types (id int PRIMARY KEY, m mood, ms mood[], p posint, pr pair,
    rc regclass, rcs regtype[], acl aclitem[], t text)`;

const DATA = `
  INSERT INTO builtin_types SELECT g, g - 100, g * 10000000000, g / 7.0, 'NaN',
    CASE g % 4 WHEN 0 THEN 'NaN' WHEN 1 THEN '-0' WHEN 2 THEN '-Infinity' ELSE g / 3.0 END,
    CASE g % 3 WHEN 0 THEN 1e-300 WHEN 1 THEN 'Infinity' ELSE g / 3.0 END,
    CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'tab\\there\\nnew line \\\\ back' ||
      ' ünï €' ELSE repeat('long ', 3000) || g END,
    'ab', CASE WHEN g % 2 = 0 THEN 'x' END,
    (SELECT string_agg(set_byte('\\x00'::bytea, 0, (b + g) % 256), '') FROM generate_series(0, 255) b),
    g % 2 = 0, DATE '2000-01-01' + g, CASE g % 3 WHEN 0 THEN 'infinity' ELSE now() - g * interval '1 h' END,
    TIMESTAMP '1999-12-31 23:59:59.999999' + g * interval '1 s', g * interval '1 day 3 microseconds',
    md5(g::text)::uuid, '{"a" :  [1, 2], "b": "\\u00e9"}', ('{"k": ' || g || ', "z": null}')::jsonb,
    ARRAY[g, NULL, -g], ARRAY['a"b', NULL, 'c,d', E'e\\\\f', ''], ('10.0.' || g % 256 || '.1/24')::inet,
    g * 1.25, B'1011'::bit varying(8), tstzrange(now() - interval '1 h', NULL),
    ('<r a="' || g || '">&amp;</r>')::xml, g
    FROM generate_series(1, 400) g;
  INSERT INTO user_types SELECT g, 'ok', ARRAY['happy', 'sad']::mood[], g, ROW(g, 'p' || g)::pair,
    'builtin_types'::regclass, ARRAY['mood', 'pair']::regtype[],
    (SELECT relacl FROM pg_class WHERE relacl IS NOT NULL LIMIT 1), 't' || g
    FROM generate_series(1, 50) g;`;

async function facts(node: PostgresCluster, table: string, columns: readonly string[]) {
  const client = new pg.Client({ connectionString: node.url });
  await client.connect();
  try {
    return await copyFormatFacts(client, table, columns);
  } finally {
    await client.end();
  }
}

describe('attach copies in binary where every type allows it, else text', () => {
  it('copies built-in and user types exactly, user types and reg* not in binary', async () => {
    const { primary, replicas } = clusters;
    // Other type OIDs on the replicas: a binary copy of an enum array, a composite
    // or a regclass would carry the primary's OIDs and fail or name other objects.
    for (const replica of replicas)
      await replica.query(`CREATE TYPE shift AS ENUM ('x'); CREATE TABLE shift_t (s shift)`);
    for (const node of [primary, ...replicas]) await node.query(`${TYPES} ${BUILTIN}; ${USER}`);
    await primary.query(DATA);

    const builtin = await facts(primary, 'builtin_types', [
      'id',
      'i2',
      'i8',
      'n',
      'nn',
      'f4',
      'f8',
      't',
      'c',
      'vc',
      'b',
      'ok',
      'd',
      'ts',
      'tsl',
      'iv',
      'u',
      'j',
      'jb',
      'ia',
      'ta',
      'ip',
      'm',
      'bits',
      'tr',
      'x',
      'o',
    ]);
    expect(builtin.binarySafe).toBe(true);
    // A catalog's row type, and an array of one, carry aclitem[] and OIDs inside.
    await primary.query(
      'CREATE TABLE catalog_rows (id int PRIMARY KEY, c pg_class, cs pg_class[])',
    );
    for (const column of ['c', 'cs'])
      expect((await facts(primary, 'catalog_rows', ['id', column])).binarySafe, column).toBe(false);
    for (const node of [primary, ...replicas]) {
      expect((await facts(node, 'user_types', ['id', 't'])).binarySafe).toBe(true);
      for (const column of USER_COLUMNS)
        expect((await facts(node, 'user_types', ['id', column, 't'])).binarySafe, column).toBe(
          false,
        );
    }

    const config = writeConfig(primary, replicas, {
      tables: ['public.builtin_types', 'public.user_types'],
    });
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.code, attached.output).toBe(0);
      await expectIdentical(primary, replicas, ['builtin_types', 'user_types']);
      // The regclass names the replica's own table, not the primary's OID.
      for (const replica of replicas)
        expect(await replica.query('SELECT DISTINCT rc::text AS rc FROM user_types')).toEqual([
          { rc: 'builtin_types' },
        ]);
    } finally {
      config.remove();
    }
  });
});
