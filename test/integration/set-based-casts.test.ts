import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deleteManyStatement,
  type EncodedRows,
  type EncodedUpdate,
  encodeNetChanges,
  type ReplicaColumnTypes,
  updateManyStatement,
} from '../../adapters/postgres/apply/bulk-statement.js';
import type { ChangeStatement } from '../../adapters/postgres/apply/change-statement.js';
import { ColumnTypes } from '../../adapters/postgres/apply/column-types.js';
import { type Relation, UNCHANGED_TOAST, type Value } from '../../plugin/protocol/index.js';
import { useClusters } from '../support/use-clusters.js';

// The set-based statements against the replica's own catalog: its columns are
// narrower than the primary's, so values come padded or too long.
const SCHEMA = `
  CREATE DOMAIN short_note AS varchar(4);
  CREATE TABLE probe (code char(3), tag varchar(5), note short_note, flags bit(3),
    names varchar(3)[], price numeric(6,1), PRIMARY KEY (code, tag));
  INSERT INTO probe VALUES ('ab', 'xy', 'n', '101', '{a}', 1.0), ('cd', 'zw', 'n', '101', '{a}', 1.0);`;
const COLUMNS = ['code', 'tag', 'note', 'flags', 'names', 'price'];

const relation: Relation = {
  oid: 1,
  schema: 'public',
  name: 'probe',
  replicaIdentity: 'default',
  columns: COLUMNS.map((name, i) => ({
    name,
    typeOid: 25,
    typeMod: -1,
    typeName: null,
    isKey: i < 2,
  })),
  keyIndexes: [0, 1],
};

const clusters = useClusters();
let types: ReplicaColumnTypes;
let client: pg.Client;

beforeAll(async () => {
  await clusters.primary.query(SCHEMA);
  types = await new ColumnTypes('replica1').of(relation, 1, (text, values) =>
    clusters.primary.query(text, values),
  );
  client = new pg.Client({ connectionString: clusters.primary.url });
  await client.connect();
});
afterAll(() => client.end());

/** Runs a set-based statement in a transaction rolled back after: the rows it touched, and the table then. */
async function run(
  statement: ChangeStatement,
): Promise<{ touched: number | null; rows: unknown[] }> {
  await client.query('BEGIN');
  try {
    const result = await client.query({
      text: statement.text,
      values: statement.values as (string | Buffer | null)[],
    });
    const table = await client.query(
      'SELECT code, tag, note, flags, names, price::text FROM probe ORDER BY 1',
    );
    return { touched: result.rowCount, rows: table.rows };
  } finally {
    await client.query('ROLLBACK');
  }
}

/** The one UPDATE of `rows` (key columns, then the values; UNCHANGED_TOAST for columns to leave). */
function update(rows: Value[][]): ChangeStatement {
  const encoded = encodeNetChanges({ relation, deletes: [], updates: rows, inserts: [] }, 'halt');
  return updateManyStatement(relation, encoded.updates[0] as EncodedUpdate, types);
}

const keep = UNCHANGED_TOAST;

describe('set-based statements cast to the replica types without their typmod', () => {
  it('finds rows by keys padded for a wider char(n) and rounds numeric(p,s) like the column', async () => {
    const { touched, rows } = await run(
      update([
        ['ab    ', 'xy', keep, keep, keep, '2.25'],
        ['cd    ', 'zw', keep, keep, keep, '-3.35'],
      ]),
    );
    expect(rows).toMatchObject([
      { code: 'ab ', price: '2.3' },
      { code: 'cd ', price: '-3.4' },
    ]);
    expect(touched).toBe(2);
    const encoded = encodeNetChanges(
      {
        relation,
        deletes: [
          ['ab    ', 'xy'],
          ['cd', 'zw'],
        ],
        updates: [],
        inserts: [],
      },
      'halt',
    );
    const deleted = await run(deleteManyStatement(relation, encoded.deletes as EncodedRows, types));
    expect(deleted).toEqual({ touched: 2, rows: [] });
  });

  it.each([
    ['a domain over varchar(n)', ['abcdefgh', keep, keep, keep], '22001'],
    ['bit(n)', [keep, '1011', keep, keep], '22026'],
    ['an array of varchar(n)', [keep, keep, '{abcd}', keep], '22001'],
  ])('rejects a value too long for %s instead of cutting it', async (_, values, sqlState) => {
    const statement = update([
      ['ab', 'xy', ...values],
      ['cd', 'zw', ...values],
    ] as Value[][]);
    await expect(run(statement)).rejects.toMatchObject({ code: sqlState });
  });
});
