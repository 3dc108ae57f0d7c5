import { describe, expect, it } from 'vitest';
import {
  encodeNetChanges,
  netChangeStatements,
} from '../../adapters/postgres/apply/bulk-statement.js';
import { changeStatement } from '../../adapters/postgres/apply/change-statement.js';
import { bindMessage } from '../../adapters/postgres/apply/text-bind-query.js';
import { PgoutputDecoder } from '../../adapters/postgres/source/pgoutput-decoder.js';
import { TupleRow } from '../../adapters/postgres/source/pgoutput-tuple.js';
import {
  hasUnchangedToast,
  LARGE_ROW_BYTES,
  type Relation,
  UNCHANGED_TOAST,
  type Value,
} from '../../plugin/protocol/index.js';
import { tupleData, tupleRow } from '../support/rows.js';

const relation: Relation = {
  oid: 1,
  schema: 'public',
  name: 'doc',
  replicaIdentity: 'default',
  keyIndexes: [0],
  columns: ['id', 'body', 'note'].map((name, i) => ({
    name,
    typeOid: 25,
    typeMod: -1,
    typeName: null,
    isKey: i === 0,
  })),
};
const types = { types: ['bigint', 'bytea', 'text'] };
const big = `\\x${'0a'.repeat(LARGE_ROW_BYTES / 2)}`;

/** Reads a Bind message's parameters back (text form); checks its framing. */
function readBind(chunks: readonly Buffer[]): (string | null)[] {
  const bytes = Buffer.concat(chunks);
  expect(bytes[0]).toBe(0x42);
  expect(bytes.readInt32BE(1)).toBe(bytes.length - 1);
  expect(bytes.readInt16BE(5)).toBe(0); // unnamed portal and statement
  expect([bytes.readInt16BE(7), bytes.readInt16BE(9)]).toEqual([1, 0]); // all text
  const count = bytes.readInt16BE(11);
  const params: (string | null)[] = [];
  let at = 13;
  for (let i = 0; i < count; i++) {
    const length = bytes.readInt32BE(at);
    at += 4;
    params.push(length < 0 ? null : bytes.toString('utf8', at, at + length));
    at += Math.max(length, 0);
  }
  expect([bytes.readInt16BE(at), bytes.readInt16BE(at + 2)]).toEqual([1, 0]);
  expect(at + 4).toBe(bytes.length);
  return params;
}

describe('large rows', () => {
  it('keeps an update with unchanged TOAST as bytes, the marker read without decoding', () => {
    const decoder = new PgoutputDecoder();
    const head = Buffer.from([0x55, 0, 0, 0, 1, 0x4e, 0, 3]);
    const relationMessage = Buffer.concat([
      Buffer.from([0x52, 0, 0, 0, 1]),
      Buffer.from('public\0doc\0d'),
      Buffer.from([0, 3]),
      ...['id', 'body', 'note'].map((n) =>
        Buffer.concat([
          Buffer.from([0]),
          Buffer.from(`${n}\0`),
          Buffer.from([0, 0, 0, 25, 255, 255, 255, 255]),
        ]),
      ),
    ]);
    decoder.decode(relationMessage);
    const message = Buffer.concat([head, tupleData(['1', UNCHANGED_TOAST, 'é'])]);
    const decoded = decoder.decode(message, 0, message.length, true);
    const row = (decoded as unknown as { row: TupleRow }).row;
    expect(row).toBeInstanceOf(TupleRow);
    expect(row.complete).toBe(false);
    expect(hasUnchangedToast(row)).toBe(true);
    expect([row.at(0), row.at(1), row.at(2)]).toEqual(['1', UNCHANGED_TOAST, 'é']);
  });

  it('sends a large row value by value as views into its bytes, unchanged TOAST left out', () => {
    const insert = tupleRow(['1', big, 'a\tb\\c\n']);
    const statement = changeStatement({ kind: 'insert', relation, row: insert }, 'halt');
    expect(statement.textBytes).toBe(true);
    const body = statement.values[1] as Buffer;
    expect(body.buffer).toBe(insert.bytes.buffer); // a view, not a copy
    expect(readBind(bindMessage(statement.values))).toEqual(['1', big, 'a\tb\\c\n']);
    const update = tupleRow(['1', UNCHANGED_TOAST, big]);
    const set = changeStatement({ kind: 'update', relation, row: update, key: null }, 'halt');
    expect(set.text).toBe('UPDATE "public"."doc" SET "id" = $1, "note" = $2 WHERE "id" = $3');
    expect(readBind(bindMessage(set.values))).toEqual(['1', big, '1']);
    // A large value goes to the socket as its own chunk: the same Buffer.
    expect(bindMessage(set.values)).toContain(set.values[1]);
  });

  it('keeps small rows on the usual path', () => {
    const statement = changeStatement(
      { kind: 'insert', relation, row: tupleRow(['1', 'x', null]) },
      'halt',
    );
    expect(statement.textBytes).toBe(false);
    expect(statement.values).toEqual(['1', 'x', null]);
  });

  it('takes large rows out of a batch: one statement each, after the others of their kind', () => {
    const rows = (values: Value[][]) => values.map(tupleRow);
    const encoded = encodeNetChanges(
      {
        relation,
        deletes: [['9']],
        updates: rows([
          ['2', 'small', 'x'],
          ['3', UNCHANGED_TOAST, big],
        ]),
        inserts: rows([
          ['4', big, null],
          ['5', 'small', null],
        ]),
      },
      'halt',
    );
    expect(encoded.inserts && 'data' in encoded.inserts && encoded.inserts.count).toBe(1);
    expect(encoded.updates.map((u) => u.count)).toEqual([1]);
    const statements = netChangeStatements(encoded, types, 'halt');
    expect(statements.map((s) => [s.text.split(' ')[0], s.textBytes ?? false])).toEqual([
      ['DELETE', false],
      ['UPDATE', false],
      ['UPDATE', true],
      ['COPY', false],
      ['INSERT', true],
    ]);
  });
});
