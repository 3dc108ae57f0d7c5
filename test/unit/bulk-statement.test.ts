import { describe, expect, it } from 'vitest';
import {
  deleteManyStatement,
  type EncodedRows,
  encodeCopyRows,
  encodeNetChanges,
  updateManyStatement,
} from '../../adapters/postgres/apply/bulk-statement.js';
import { binaryTextArrays } from '../../adapters/postgres/apply/row-encoding.js';
import { type Relation, UNCHANGED_TOAST, type Value } from '../../plugin/protocol/index.js';
import { tupleRow } from '../support/rows.js';

/** Reads a binary one-dimensional `text[]` back: its elements, NULL as null. */
function readTextArray(buf: Buffer): (string | null)[] {
  expect(buf.readInt32BE(0)).toBe(1); // dimensions
  const hasNull = buf.readInt32BE(4);
  expect(buf.readInt32BE(8)).toBe(25); // text
  const count = buf.readInt32BE(12);
  expect(buf.readInt32BE(16)).toBe(1); // lower bound
  const out: (string | null)[] = [];
  let at = 20;
  for (let i = 0; i < count; i++) {
    const length = buf.readInt32BE(at);
    at += 4;
    if (length < 0) out.push(null);
    else {
      out.push(buf.toString('utf8', at, at + length));
      at += length;
    }
  }
  expect(at).toBe(buf.length);
  expect(hasNull).toBe(out.includes(null) ? 1 : 0);
  return out;
}

const texts = (encoded: { values: readonly Buffer[] } | null) => encoded?.values.map(readTextArray);

describe('binaryTextArrays', () => {
  const values: Value[][] = [
    ['1', 'plain'],
    ['2', 'a "quoted" \\ word, {braces}'],
    ['3', null],
    ['4', ''],
    ['5', 'NULL'],
    ['6', 'ünïcode ✓'],
  ];

  it('carries every value as it is, NULL as NULL, one array per column asked for', () => {
    const [second, first] = binaryTextArrays(values, [1, 0]).map(readTextArray);
    expect(first).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(second).toEqual(values.map((row) => row[1]));
  });

  it('writes the same bytes for rows kept as pgoutput tuples', () => {
    const tuples = values.map(tupleRow);
    expect(binaryTextArrays(tuples, [0, 1])).toEqual(binaryTextArrays(values, [0, 1]));
  });

  it('sends unchanged TOAST as NULL, and no rows as an empty array', () => {
    expect(binaryTextArrays([['x'], [UNCHANGED_TOAST]], [0]).map(readTextArray)).toEqual([
      ['x', null],
    ]);
    expect(binaryTextArrays([], [0]).map(readTextArray)).toEqual([[]]);
  });
});

describe('encodeNetChanges', () => {
  const relation: Relation = {
    oid: 1,
    schema: 'public',
    name: 'doc',
    replicaIdentity: 'default',
    columns: ['id', 'title', 'body'].map((name, i) => ({
      name,
      typeOid: 25,
      typeMod: -1,
      typeName: null,
      isKey: i === 0,
    })),
    keyIndexes: [0],
  };

  it('encodes deletes by key, updates per unchanged-TOAST shape (key first), upserts whole', () => {
    const encoded = encodeNetChanges(
      {
        relation,
        deletes: [['9']],
        updates: [
          ['1', 'a', UNCHANGED_TOAST],
          ['2', 'b', 'new body'],
          ['3', 'c', UNCHANGED_TOAST],
        ],
        inserts: [['4', 'd', 'e']],
      },
      'overwrite',
    );
    expect(encoded.deletes?.count).toBe(1);
    expect(texts(encoded.deletes)).toEqual([['9']]);
    expect(encoded.updates.map(({ count, set, used }) => ({ count, set, used }))).toEqual([
      { count: 2, set: [1], used: [0, 1] },
      { count: 1, set: [1, 2], used: [0, 1, 2] },
    ]);
    expect(encoded.updates.map(texts)).toEqual([
      [
        ['1', '3'],
        ['a', 'c'],
      ],
      [['2'], ['b'], ['new body']],
    ]);
    expect((encoded.inserts as { count: number }).count).toBe(1);
    expect(texts(encoded.inserts as EncodedRows)).toEqual([['4'], ['d'], ['e']]);
  });

  it('has updates and deletes visit their rows in key order, by the replica type', () => {
    const encoded = encodeNetChanges(
      { relation, deletes: [['9'], ['10']], updates: [['2', 'b', 'x']], inserts: [] },
      'halt',
    );
    const types = { types: ['bigint', 'text', 'text'] };
    const update = updateManyStatement(relation, encoded.updates[0] as never, types);
    const remove = deleteManyStatement(relation, encoded.deletes as never, types);
    for (const statement of [update, remove]) {
      expect(statement.text).toMatch(/\(SELECT \* FROM unnest\(.*\) ORDER BY u\.v0::bigint\) AS u/);
      expect(statement.text).toContain('t."id" = u.v0::bigint');
    }
  });

  it('leaves out what the batch does not have', () => {
    const encoded = encodeNetChanges({ relation, deletes: [], updates: [], inserts: [] }, 'halt');
    expect(encoded).toEqual({
      relation,
      deletes: null,
      updates: [],
      inserts: null,
      large: { updates: [], inserts: [] },
    });
  });

  it('sends plain inserts as COPY data (upserts need an INSERT)', () => {
    const encoded = encodeNetChanges(
      { relation, deletes: [], updates: [], inserts: [['4', null, 'e']] },
      'halt',
    );
    expect(encoded.inserts).toEqual({ count: 1, data: Buffer.from('4\t\\N\te\n') });
  });
});

describe('encodeCopyRows', () => {
  const rows: Value[][] = [
    ['1', 'tab\there', 'new\nline', 'cr\rhere'],
    ['2', '\\x00ff', null, 'plain "quotes", commas {braces} and ünïcode'],
    ['3', '\\N', '', null],
  ];

  it('writes the same bytes for rows kept as pgoutput tuples', () => {
    expect(encodeCopyRows(rows.map(tupleRow))).toEqual(encodeCopyRows(rows));
  });

  it('escapes long values too, wherever the special byte is', () => {
    const long = 'ü'.repeat(40);
    const values = ['', '\\', '\t', '\n', '\r'].map((special) => `${long}${special}${long}`);
    const expected = `${values.map((v) => v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')).join('\t')}\n`;
    expect(encodeCopyRows([values]).data.toString()).toBe(expected);
    expect(encodeCopyRows([tupleRow(values)]).data.toString()).toBe(expected);
  });

  it("escapes what COPY's text format reads specially, and nothing else", () => {
    const { count, data } = encodeCopyRows([
      ['1', 'tab\there', 'new\nline', 'cr\rhere'],
      ['2', '\\x00ff', null, 'plain "quotes", commas {braces} and ünïcode'],
      ['3', '\\N', '', UNCHANGED_TOAST],
    ]);
    expect(count).toBe(3);
    expect(data.toString()).toBe(
      '1\ttab\\there\tnew\\nline\tcr\\rhere\n' +
        '2\t\\\\x00ff\t\\N\tplain "quotes", commas {braces} and ünïcode\n' +
        '3\t\\\\N\t\t\\N\n',
    );
  });
});
