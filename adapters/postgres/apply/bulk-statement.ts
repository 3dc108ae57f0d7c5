import {
  hasUnchangedToast,
  type Relation,
  type RelationNetChanges,
  type Row,
} from '../../../plugin/protocol/index.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';
import {
  type ChangeStatement,
  type ConflictMode,
  changeStatement,
  onConflictClause,
  upserts,
} from './change-statement.js';
import { splitLarge, unchangedColumns } from './large-rows.js';
import { binaryTextArrays, copyTextRows } from './row-encoding.js';

/**
 * A relation's columns with the replica's types to cast their values to, in
 * the primary's order: without typmod, so the column applies its own (see column-types.ts).
 */
export interface ReplicaColumnTypes {
  readonly types: readonly string[];
}

/**
 * Set-based statements: one statement for many rows of one table. Values
 * travel as text arrays (`unnest($1::text[], …)`, sent in binary form: the
 * primary's bytes with a length each) and are cast to the replica's column
 * types, so the text form from the primary is read by the same input
 * functions as a row-by-row apply would use.
 */
function unnestFrom(columnCount: number): string {
  const params = Array.from({ length: columnCount }, (_, i) => `$${i + 1}::text[]`);
  const names = Array.from({ length: columnCount }, (_, i) => `v${i}`);
  return `unnest(${params.join(', ')}) AS u(${names.join(', ')})`;
}

/** The `i`-th column of {@link unnestFrom}'s rows. */
const unnested = (i: number) => `u.v${i}`;

/**
 * {@link unnestFrom} with its rows in key order (`keys`: expressions over the
 * {@link unnested} columns): the join then visits the table's key index, and
 * the heap pages it points to, in order instead of at random — measured 5-10%
 * less time per UPDATE of a batch of random keys — and takes row locks in a
 * stable order.
 */
function unnestFromInKeyOrder(columnCount: number, keys: readonly string[]): string {
  return `(SELECT * FROM ${unnestFrom(columnCount)} ORDER BY ${keys.join(', ')}) AS u`;
}

/** Rows of one set-based statement, as one `text[]` literal per column it reads. */
export interface EncodedRows {
  /** Number of rows. */
  readonly count: number;
  /** One binary `text[]` per column read, in the statement's parameter order. */
  readonly values: readonly Buffer[];
}

/** Rows to add as COPY text-format data, one line per row (every column). */
export interface EncodedCopy {
  /** Number of rows. */
  readonly count: number;
  /** The lines, UTF-8. */
  readonly data: Buffer;
}

/** Rows to add: COPY data, or `text[]` literals for an INSERT (one that upserts). */
export type EncodedInserts = EncodedRows | EncodedCopy;

/** The rows of one UPDATE: they share which columns are unchanged TOAST (those are left alone). */
export interface EncodedUpdate extends EncodedRows {
  /** Columns written (neither key nor unchanged TOAST). */
  readonly set: readonly number[];
  /** Columns read, key columns first: the order of `values`. */
  readonly used: readonly number[];
}

/**
 * One relation's net changes with every value encoded. It depends only on the
 * primary's packets, not on a replica, so replicas applying the same batch
 * share it (see SharedBatchPlans); each builds only the statement text.
 */
export interface EncodedNetChanges {
  readonly relation: Relation;
  readonly deletes: EncodedRows | null;
  readonly updates: readonly EncodedUpdate[];
  readonly inserts: EncodedInserts | null;
  /** Large rows, applied one statement each after the others of their kind (see large-rows.ts). */
  readonly large: { readonly updates: readonly Row[]; readonly inserts: readonly Row[] };
}

/** Encodes columns `indexes` of `rows`. */
export function encodeRows(rows: readonly Row[], indexes: readonly number[]): EncodedRows {
  return { count: rows.length, values: binaryTextArrays(rows, indexes) };
}

/** Encodes `rows` for COPY's text format. */
export function encodeCopyRows(rows: readonly Row[]): EncodedCopy {
  return { count: rows.length, data: copyTextRows(rows) };
}

/**
 * Encodes whole rows to add to `relation`: as COPY data, the cheapest way in
 * (the server inserts them in bulk), unless they must upsert.
 */
export function encodeInserts(
  relation: Relation,
  rows: readonly Row[],
  mode: ConflictMode,
): EncodedInserts {
  return upserts(relation, mode) ? encodeRows(rows, all(relation)) : encodeCopyRows(rows);
}

/** Encodes a relation's net changes: deletes by key, updates grouped by unchanged-TOAST columns, inserts whole. */
export function encodeNetChanges(net: RelationNetChanges, mode: ConflictMode): EncodedNetChanges {
  const { relation } = net;
  const keyPositions = relation.keyIndexes.map((_, k) => k);
  const updates = splitLarge(net.updates);
  const inserts = splitLarge(net.inserts);
  return {
    relation,
    deletes: net.deletes.length ? encodeRows(net.deletes, keyPositions) : null,
    updates: byToastMask(updates.small).map((group) => {
      const unchanged = unchangedColumns(group[0] as Row);
      const set = all(relation).filter((i) => !unchanged[i] && !relation.keyIndexes.includes(i));
      const used = [...relation.keyIndexes, ...set];
      return { ...encodeRows(group, used), set, used };
    }),
    inserts: inserts.small.length ? encodeInserts(relation, inserts.small, mode) : null,
    large: { updates: updates.large, inserts: inserts.large },
  };
}

const all = (relation: Relation) => relation.columns.map((_, i) => i);

/** Adds many rows (a run of inserts, or the inserts of a compacted batch), every column. */
export function insertManyStatement(
  relation: Relation,
  rows: EncodedInserts,
  types: ReplicaColumnTypes,
  mode: ConflictMode,
): ChangeStatement {
  const table = quoteQualified(relation.schema, relation.name);
  if ('data' in rows) {
    const columns = relation.columns.map((c) => quoteIdent(c.name)).join(', ');
    return {
      text: `COPY ${table} (${columns}) FROM STDIN`,
      values: [],
      copyData: rows.data,
      expectsRow: false,
      rows: rows.count,
    };
  }
  const columns = relation.columns.map((c) => quoteIdent(c.name));
  let text = `INSERT INTO ${table} (${columns.join(', ')}) SELECT ${columns
    .map((_, i) => `${unnested(i)}::${types.types[i]}`)
    .join(', ')} FROM ${unnestFrom(columns.length)}`;
  text += onConflictClause(relation, columns, mode);
  return { text, values: rows.values, expectsRow: false, rows: rows.count };
}

/** UPDATE of many rows by key, writing the group's `set` columns; each must match exactly one row. */
export function updateManyStatement(
  relation: Relation,
  update: EncodedUpdate,
  types: ReplicaColumnTypes,
): ChangeStatement & { expectedRows: number } {
  const { set, used } = update;
  const ref = (i: number) => `${unnested(used.indexOf(i))}::${types.types[i]}`;
  const from = unnestFromInKeyOrder(used.length, relation.keyIndexes.map(ref));
  const table = quoteQualified(relation.schema, relation.name);
  const name = (i: number) => quoteIdent(relation.columns[i]?.name as string);
  const where = relation.keyIndexes.map((i) => `t.${name(i)} = ${ref(i)}`).join(' AND ');
  const text = set.length
    ? `UPDATE ${table} AS t SET ${set.map((i) => `${name(i)} = ${ref(i)}`).join(', ')} FROM ${from} WHERE ${where}`
    : `SELECT 1 FROM ${table} AS t, ${from} WHERE ${where}`;
  return {
    text,
    values: update.values,
    expectsRow: false,
    rows: update.count,
    expectedRows: update.count,
  };
}

/** DELETE of many rows by key (`keys` encodes the key columns); each must match exactly one row. */
export function deleteManyStatement(
  relation: Relation,
  keys: EncodedRows,
  types: ReplicaColumnTypes,
): ChangeStatement & { expectedRows: number } {
  const key = (k: number) => `${unnested(k)}::${types.types[relation.keyIndexes[k] as number]}`;
  const from = unnestFromInKeyOrder(
    relation.keyIndexes.length,
    relation.keyIndexes.map((_, k) => key(k)),
  );
  const where = relation.keyIndexes
    .map(
      (columnIndex, k) =>
        `t.${quoteIdent(relation.columns[columnIndex]?.name as string)} = ${key(k)}`,
    )
    .join(' AND ');
  return {
    text: `DELETE FROM ${quoteQualified(relation.schema, relation.name)} AS t USING ${from} WHERE ${where}`,
    values: keys.values,
    expectsRow: false,
    rows: keys.count,
    expectedRows: keys.count,
  };
}

/**
 * The statements that apply one relation's encoded net changes, in the order
 * that avoids the usual key collisions: deletes, then updates, then inserts.
 */
export function netChangeStatements(
  net: EncodedNetChanges,
  types: ReplicaColumnTypes,
  mode: ConflictMode,
): ChangeStatement[] {
  const statements: ChangeStatement[] = [];
  if (net.deletes) statements.push(deleteManyStatement(net.relation, net.deletes, types));
  const { relation, large } = net;
  for (const update of net.updates) statements.push(updateManyStatement(relation, update, types));
  for (const row of large.updates)
    statements.push(changeStatement({ kind: 'update', relation, row, key: null }, mode));
  if (net.inserts) statements.push(insertManyStatement(relation, net.inserts, types, mode));
  for (const row of large.inserts)
    statements.push(changeStatement({ kind: 'insert', relation, row }, mode));
  return statements;
}

/** Groups rows by which columns hold unchanged TOAST, so each group is one UPDATE shape. */
function byToastMask(rows: readonly Row[]): Row[][] {
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const mask = toastMask(row);
    const group = groups.get(mask);
    if (group) group.push(row);
    else groups.set(mask, [row]);
  }
  return [...groups.values()];
}

/** Which columns of `row` hold unchanged TOAST ('' for none, the common case, without building a string). */
function toastMask(row: Row): string {
  if (!hasUnchangedToast(row)) return '';
  return unchangedColumns(row)
    .map((unchanged) => (unchanged ? '1' : '0'))
    .join('');
}
