import {
  isUnchangedToast,
  type Relation,
  type Row,
  type Value,
} from '../../plugin/protocol/index.js';
import { type ChangeStatement, type ConflictMode, onConflictClause } from './change-statement.js';
import { quoteIdent, quoteQualified } from './sql-identifier.js';

/** A relation's columns with their types on the replica (`format_type`), in the primary's order. */
export interface ReplicaColumnTypes {
  readonly types: readonly string[];
}

/**
 * Set-based statements: one statement for many rows of one table. Values
 * travel as text arrays (`unnest($1::text[], …)`) and are cast to the
 * replica's column types, so the text form from the primary is read by the
 * same input functions as a row-by-row apply would use.
 */
function unnestFrom(
  columnCount: number,
  firstParam = 1,
): { from: string; alias: (i: number) => string } {
  const params = Array.from({ length: columnCount }, (_, i) => `$${firstParam + i}::text[]`);
  const names = Array.from({ length: columnCount }, (_, i) => `v${i}`);
  return {
    from: `unnest(${params.join(', ')}) AS u(${names.join(', ')})`,
    alias: (i) => `u.v${i}`,
  };
}

const NEEDS_ESCAPE = /[\\"]/;
const ESCAPED = /[\\"]/g;

/**
 * A `text[]` literal of one column of `rows` (`{"a","b\\"c",NULL}`), built
 * once instead of by the driver per element: every element quoted, only `\`
 * and `"` escaped, an unchanged-TOAST marker as NULL (such columns are left
 * out of the statements that would read them).
 */
export function textArrayLiteral(rows: readonly (readonly Value[])[], column: number): string {
  let out = '{';
  for (let r = 0; r < rows.length; r++) {
    const value = (rows[r] as readonly Value[])[column];
    if (r > 0) out += ',';
    // NULL, and the unchanged-TOAST marker.
    if (typeof value !== 'string') out += 'NULL';
    else if (NEEDS_ESCAPE.test(value)) out += `"${value.replace(ESCAPED, '\\$&')}"`;
    else out += `"${value}"`;
  }
  return `${out}}`;
}

function columnsOf(rows: readonly (readonly Value[])[], indexes: readonly number[]): string[] {
  return indexes.map((i) => textArrayLiteral(rows, i));
}

const all = (relation: Relation) => relation.columns.map((_, i) => i);

/** INSERT of many rows (a run of inserts, or the inserts of a compacted batch). */
export function insertManyStatement(
  relation: Relation,
  rows: readonly Row[],
  types: ReplicaColumnTypes,
  mode: ConflictMode,
): ChangeStatement {
  const columns = relation.columns.map((c) => quoteIdent(c.name));
  const u = unnestFrom(columns.length);
  let text = `INSERT INTO ${quoteQualified(relation.schema, relation.name)} (${columns.join(', ')}) SELECT ${columns
    .map((_, i) => `${u.alias(i)}::${types.types[i]}`)
    .join(', ')} FROM ${u.from}`;
  text += onConflictClause(relation, columns, mode);
  return { text, values: columnsOf(rows, all(relation)), expectsRow: false, rows: rows.length };
}

/**
 * UPDATE of many rows that share which columns are unchanged TOAST (those are
 * left alone); each must match exactly one row.
 */
export function updateManyStatement(
  relation: Relation,
  rows: readonly Row[],
  types: ReplicaColumnTypes,
): ChangeStatement & { expectedRows: number } {
  const sample = rows[0] as Row;
  const set = all(relation).filter(
    (i) => !isUnchangedToast(sample[i]) && !relation.keyIndexes.includes(i),
  );
  const used = [...relation.keyIndexes, ...set];
  const u = unnestFrom(used.length);
  const ref = (i: number) => `${u.alias(used.indexOf(i))}::${types.types[i]}`;
  const table = quoteQualified(relation.schema, relation.name);
  const name = (i: number) => quoteIdent(relation.columns[i]?.name as string);
  const where = relation.keyIndexes.map((i) => `t.${name(i)} = ${ref(i)}`).join(' AND ');
  const text = set.length
    ? `UPDATE ${table} AS t SET ${set.map((i) => `${name(i)} = ${ref(i)}`).join(', ')} FROM ${u.from} WHERE ${where}`
    : `SELECT 1 FROM ${table} AS t, ${u.from} WHERE ${where}`;
  return {
    text,
    values: columnsOf(rows, used),
    expectsRow: false,
    rows: rows.length,
    expectedRows: rows.length,
  };
}

/** DELETE of many rows by key; each must match exactly one row. */
export function deleteManyStatement(
  relation: Relation,
  keys: readonly (readonly Value[])[],
  types: ReplicaColumnTypes,
): ChangeStatement & { expectedRows: number } {
  const u = unnestFrom(relation.keyIndexes.length);
  const where = relation.keyIndexes
    .map(
      (columnIndex, k) =>
        `t.${quoteIdent(relation.columns[columnIndex]?.name as string)} = ${u.alias(k)}::${types.types[columnIndex]}`,
    )
    .join(' AND ');
  return {
    text: `DELETE FROM ${quoteQualified(relation.schema, relation.name)} AS t USING ${u.from} WHERE ${where}`,
    values: relation.keyIndexes.map((_, k) => textArrayLiteral(keys, k)),
    expectsRow: false,
    rows: keys.length,
    expectedRows: keys.length,
  };
}

/** Groups rows by which columns hold unchanged TOAST, so each group is one UPDATE shape. */
export function byToastMask(rows: readonly Row[]): Row[][] {
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const mask = row.map((v) => (isUnchangedToast(v) ? '1' : '0')).join('');
    const group = groups.get(mask);
    if (group) group.push(row);
    else groups.set(mask, [row]);
  }
  return [...groups.values()];
}
