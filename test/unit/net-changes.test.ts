import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Change,
  compactChanges,
  isUnchangedToast,
  type Relation,
  type Row,
  rowValues,
  UNCHANGED_TOAST,
  type Value,
} from '../../plugin/protocol/index.js';
import { tupleRow } from '../support/rows.js';

const rel = (name: string, identity: Relation['replicaIdentity'] = 'default'): Relation => ({
  oid: name.length,
  schema: 'public',
  name,
  replicaIdentity: identity,
  columns: [
    { name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true },
    { name: 'a', typeOid: 25, typeMod: -1, typeName: null, isKey: identity === 'full' },
    { name: 'doc', typeOid: 25, typeMod: -1, typeName: null, isKey: identity === 'full' },
  ],
  keyIndexes: identity === 'full' ? [0, 1, 2] : [0],
});
const accounts = rel('accounts');
const tellers = rel('tellers');

/** A table as a map from key to row: the model of a replica. */
type Table = Map<string, Value[]>;
type Db = Map<Relation, Table>;

/** Applies one change the way the ordered path does. */
function applyOrdered(db: Db, change: Change): void {
  if (change.kind !== 'insert' && change.kind !== 'update' && change.kind !== 'delete') return;
  const table = db.get(change.relation) ?? new Map();
  db.set(change.relation, table);
  if (change.kind === 'insert') {
    table.set(String(change.row.at(0)), rowValues(change.row));
  } else if (change.kind === 'update') {
    const id = String(change.row.at(0));
    const old = table.get(id);
    if (!old) throw new Error('update of a missing row');
    table.set(
      id,
      rowValues(change.row).map((v, i) => (isUnchangedToast(v) ? (old[i] as Value) : v)),
    );
  } else {
    table.delete(String(change.key[0]));
  }
}

/** Applies a compacted plan: per relation deletes, updates, inserts. */
function applyCompacted(db: Db, changes: Change[]): boolean {
  const plan = compactChanges(changes);
  if (!plan) return false;
  for (const net of plan) {
    const table = db.get(net.relation) ?? new Map();
    db.set(net.relation, table);
    for (const key of net.deletes) table.delete(String(key[0]));
    for (const row of net.updates) {
      const old = table.get(String(row.at(0)));
      if (!old) throw new Error('update of a missing row');
      table.set(
        String(row.at(0)),
        rowValues(row).map((v, i) => (isUnchangedToast(v) ? (old[i] as Value) : v)),
      );
    }
    for (const row of net.inserts) {
      if (table.has(String(row.at(0)))) throw new Error('insert of an existing row');
      table.set(String(row.at(0)), rowValues(row));
    }
  }
  return true;
}

/** Generates a valid sequence of changes (as a primary would produce) from a starting table. */
const scenario = fc
  .record({
    initial: fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { maxLength: 6 }),
    steps: fc.array(
      fc.record({
        table: fc.constantFrom(accounts, tellers),
        id: fc.integer({ min: 1, max: 8 }),
        value: fc.string({ maxLength: 3 }),
        toast: fc.boolean(),
        // Rows as the stream's decoder keeps them (bytes), or as arrays.
        asBytes: fc.boolean(),
      }),
      { maxLength: 40 },
    ),
  })
  .map(({ initial, steps }) => {
    const present = new Map<Relation, Set<number>>([
      [accounts, new Set(initial)],
      [tellers, new Set(initial)],
    ]);
    const changes: Change[] = [];
    for (const s of steps) {
      const set = present.get(s.table) as Set<number>;
      const whole = [String(s.id), s.value, `doc-${s.value}`];
      const row: Row = s.toast
        ? [String(s.id), s.value, UNCHANGED_TOAST]
        : s.asBytes
          ? tupleRow(whole)
          : whole;
      if (!set.has(s.id)) {
        changes.push({
          kind: 'insert',
          relation: s.table,
          row: s.asBytes ? tupleRow(whole) : whole,
        });
        set.add(s.id);
      } else if (s.value.length === 3) {
        changes.push({ kind: 'delete', relation: s.table, key: [String(s.id)] });
        set.delete(s.id);
      } else {
        changes.push({ kind: 'update', relation: s.table, row, key: null });
      }
    }
    return { initial, changes };
  });

function seeded(initial: number[]): Db {
  const db: Db = new Map();
  for (const r of [accounts, tellers])
    db.set(r, new Map(initial.map((id) => [String(id), [String(id), 'init', 'doc-init']])));
  return db;
}

describe('compactChanges', () => {
  it('leaves exactly the rows that applying every change in order leaves', () => {
    fc.assert(
      fc.property(scenario, ({ initial, changes }) => {
        const ordered = seeded(initial);
        for (const c of changes) applyOrdered(ordered, c);
        const compacted = seeded(initial);
        expect(applyCompacted(compacted, changes)).toBe(true);
        expect(compacted).toEqual(ordered);
      }),
      { numRuns: 500 },
    );
  });

  it('turns a pgbench-like batch into one statement per row touched', () => {
    const changes: Change[] = [];
    for (let i = 0; i < 100; i++) {
      changes.push({
        kind: 'update',
        relation: accounts,
        row: [String(i), 'x', UNCHANGED_TOAST],
        key: null,
      });
      changes.push({
        kind: 'update',
        relation: tellers,
        row: [String(i % 3), String(i), UNCHANGED_TOAST],
        key: null,
      });
    }
    const plan = compactChanges(changes);
    expect(plan?.map((n) => [n.relation.name, n.updates.length])).toEqual([
      ['accounts', 100],
      ['tellers', 3],
    ]);
    expect(plan?.[1]?.updates.find((r) => r.at(0) === '2')?.at(1)).toBe('98');
  });

  it('keeps a value set before an unchanged-TOAST update', () => {
    const plan = compactChanges([
      { kind: 'update', relation: accounts, row: ['1', 'a', 'new doc'], key: null },
      { kind: 'update', relation: accounts, row: ['1', 'b', UNCHANGED_TOAST], key: null },
    ]);
    expect(plan?.[0]?.updates).toEqual([['1', 'b', 'new doc']]);
  });

  it('refuses batches whose order matters', () => {
    const full = rel('history', 'full');
    expect(
      compactChanges([
        { kind: 'truncate', relations: [accounts], cascade: false, restartIdentity: false },
      ]),
    ).toBeNull();
    expect(
      compactChanges([{ kind: 'update', relation: accounts, row: ['2', 'a', 'd'], key: ['1'] }]),
    ).toBeNull();
    expect(compactChanges([{ kind: 'delete', relation: full, key: ['1', 'a', 'd'] }])).toBeNull();
    expect(
      compactChanges([{ kind: 'insert', relation: full, row: ['1', 'a', 'd'] }])?.[0]?.inserts,
    ).toHaveLength(1);
  });
});
