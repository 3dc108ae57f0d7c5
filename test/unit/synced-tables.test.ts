import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { SyncedTables } from '../../adapters/postgres/apply/synced-tables.js';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import {
  type Change,
  DDL_MESSAGE,
  type Lsn,
  lsnFromBigInt,
  lsnToBigInt,
  type Relation,
} from '../../plugin/protocol/index.js';
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

/** LSNs around the 32-bit boundary of a half, where text order and numeric order differ. */
const LSNS = [0x100n, 0xfffffffen, 0xffffffffn, 0x1_0000_0000n, 0x1_0000_0001n, 0x1f_0000_0000n];
const NAMES = ['a', 'b', 'c', 'd'];
/** Two relation messages per table: a relation message sent again is another object. */
const RELATIONS = NAMES.flatMap((name) => [rel(name), rel(name)]);

type Copies = ReadonlyMap<string, bigint>;
type Packet = ReturnType<typeof packet>;

/** The rule, change by change: what the fast path must agree with. */
function expected(copies: Copies, packets: readonly Packet[]): boolean | 'refused' {
  const lsns = [...copies.values()];
  // biome-ignore lint/complexity/useMathMinMax: LSNs are bigints, which Math.max refuses.
  const point = lsns.length === 0 ? null : lsns.reduce((a, b) => (b > a ? b : a));
  for (const p of packets) {
    const at = lsnToBigInt(p.lsn);
    for (const change of p.changes) {
      if (change.kind === 'message') {
        if (change.prefix === DDL_MESSAGE) return false;
        continue;
      }
      const relations = change.kind === 'truncate' ? change.relations : [change.relation];
      for (const r of relations) {
        const copy = copies.get(r.name);
        if (copy === undefined) return point !== null && at < point ? false : 'refused';
        if (at < copy) return false;
      }
    }
  }
  return true;
}

const genCopies = fc
  .array(fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...LSNS)), { maxLength: 4 })
  .map((entries) => new Map(entries));
const genChange: fc.Arbitrary<Change> = fc.oneof(
  fc.constantFrom(...RELATIONS).map(insert),
  fc.uniqueArray(fc.constantFrom(...RELATIONS), { minLength: 1, maxLength: 3 }).map(
    (relations): Change => ({
      kind: 'truncate',
      relations,
      cascade: false,
      restartIdentity: false,
    }),
  ),
  fc
    .constantFrom(DDL_MESSAGE, 'lockstep.marker')
    .map((prefix): Change => ({ kind: 'message', prefix, content: '{}' })),
);
/** A batch: LSNs only grow (equal for the parts of one packet). */
const genBatch = fc
  .array(
    fc.tuple(fc.constantFrom(...LSNS, 0x1_0000_0000n), fc.array(genChange, { maxLength: 3 })),
    {
      minLength: 1,
      maxLength: 5,
    },
  )
  .map((entries) => {
    const lsns = entries.map(([lsn]) => lsn).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    return entries.map(([, changes], i) =>
      packet(i + 1, lsnFromBigInt(lsns[i] as bigint), changes),
    );
  });

/** Tables reloaded from `rows()` whenever asked, as a table copied while the sidecar runs would be. */
function live(rows: () => Copies) {
  const client = {
    query: async () => ({
      rows: [...rows()].map(([name, lsn]) => ({
        schema_name: 'public',
        table_name: name,
        copy_lsn: lsnFromBigInt(lsn),
      })),
    }),
  } as unknown as pg.ClientBase;
  return { tables: new SyncedTables('r1', 's'), client };
}

function outcome(tables: SyncedTables, batch: readonly Packet[]): boolean | 'refused' {
  try {
    return tables.takesWholeBatch(batch);
  } catch (error) {
    if (error instanceof ApplyError && error.kind === 'not-synced') return 'refused';
    throw error;
  }
}

describe('SyncedTables.takesWholeBatch against the rule change by change', () => {
  it('agrees on any batch, copies at any LSN, and tables copied between batches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(genCopies, genBatch), { minLength: 1, maxLength: 4 }),
        async (steps) => {
          let copies: Copies = new Map();
          const { tables, client } = live(() => copies);
          for (const [next, batch] of steps) {
            copies = next;
            await tables.load(client);
            expect(outcome(tables, batch)).toBe(expected(copies, batch));
            // Asked again (the cached comparisons of the first call are kept).
            expect(outcome(tables, batch)).toBe(expected(copies, batch));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
