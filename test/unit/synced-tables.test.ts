import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { SyncedTables } from '../../adapters/postgres/apply/synced-tables.js';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import { type Change, DDL_MESSAGE, type Lsn, type Relation } from '../../plugin/protocol/index.js';
import { tupleRow } from '../support/rows.js';

const rel = (name: string): Relation => ({
  oid: name.length,
  schema: 'public',
  name,
  replicaIdentity: 'default',
  columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true }],
  keyIndexes: [0],
});
const early = rel('early');
const late = rel('late');
const never = rel('never');

/** A replica whose `early` table was copied at 0/100 and `late` at 0/300. */
async function synced(): Promise<SyncedTables> {
  const rows = [
    { schema_name: 'public', table_name: 'early', copy_lsn: '0/100' },
    { schema_name: 'public', table_name: 'late', copy_lsn: '0/300' },
  ];
  const client = { query: async () => ({ rows }) } as unknown as pg.ClientBase;
  const tables = new SyncedTables('r1', 's');
  await tables.load(client);
  return tables;
}

const insert = (relation: Relation): Change => ({ kind: 'insert', relation, row: tupleRow(['1']) });
const packet = (version: number, lsn: string, changes: Change[]) => ({
  version,
  lsn: lsn as Lsn,
  changes,
});

describe('SyncedTables.takesWholeBatch', () => {
  it('takes a batch committed after every copy, change after change', async () => {
    const tables = await synced();
    const batch = [1, 2, 3].map((v) => packet(v, `0/${400 + v}`, [insert(early), insert(late)]));
    expect(tables.takesWholeBatch(batch)).toBe(true);
  });

  it('refuses a batch with a change a copy already holds', async () => {
    const tables = await synced();
    expect(tables.takesWholeBatch([packet(1, '0/200', [insert(early), insert(late)])])).toBe(false);
  });

  it('refuses a batch with captured DDL, also after every copy', async () => {
    const tables = await synced();
    const ddl: Change = { kind: 'message', prefix: DDL_MESSAGE, content: '{}' };
    const batch = [packet(1, '0/400', [insert(early)]), packet(2, '0/401', [ddl])];
    expect(tables.takesWholeBatch(batch)).toBe(false);
  });

  it('names a table never copied, in a later packet after every copy', async () => {
    const tables = await synced();
    const batch = [packet(1, '0/400', [insert(early)]), packet(2, '0/401', [insert(never)])];
    expect(() => tables.takesWholeBatch(batch)).toThrow(ApplyError);
  });

  it('names a table never copied inside a truncate', async () => {
    const tables = await synced();
    const truncate: Change = {
      kind: 'truncate',
      relations: [early, never],
      cascade: false,
      restartIdentity: false,
    };
    expect(() => tables.takesWholeBatch([packet(1, '0/400', [truncate])])).toThrow(ApplyError);
  });
});
