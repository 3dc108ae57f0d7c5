import { describe, expect, it } from 'vitest';
import {
  deleteManyStatement,
  encodeCopyRows,
  encodeNetChanges,
  textArrayLiteral,
  updateManyStatement,
} from '../../adapters/postgres/bulk-statement.js';
import { type Relation, UNCHANGED_TOAST } from '../../plugin/protocol/index.js';

describe('textArrayLiteral', () => {
  it('quotes every element and escapes only backslash and double quote', () => {
    const rows = [
      ['1', 'plain'],
      ['2', 'a "quoted" \\ word'],
      ['3', null],
      ['4', ''],
      ['5', 'NULL'],
    ];
    expect(textArrayLiteral(rows, 0)).toBe('{"1","2","3","4","5"}');
    expect(textArrayLiteral(rows, 1)).toBe('{"plain","a \\"quoted\\" \\\\ word",NULL,"","NULL"}');
  });

  it('keeps braces, commas and spaces inside the quotes, and sends unchanged TOAST as NULL', () => {
    expect(textArrayLiteral([['{1,2}'], [' x , y '], [UNCHANGED_TOAST]], 0)).toBe(
      '{"{1,2}"," x , y ",NULL}',
    );
  });

  it('is an empty array for no rows', () => {
    expect(textArrayLiteral([], 0)).toBe('{}');
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
    expect(encoded.deletes).toEqual({ count: 1, values: ['{"9"}'] });
    expect(encoded.updates).toEqual([
      { count: 2, set: [1], used: [0, 1], values: ['{"1","3"}', '{"a","c"}'] },
      { count: 1, set: [1, 2], used: [0, 1, 2], values: ['{"2"}', '{"b"}', '{"new body"}'] },
    ]);
    expect(encoded.inserts).toEqual({ count: 1, values: ['{"4"}', '{"d"}', '{"e"}'] });
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
    expect(encoded).toEqual({ relation, deletes: null, updates: [], inserts: null });
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
