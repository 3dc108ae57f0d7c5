import {
  type Change,
  type DeleteChange,
  identityOf,
  isUnchangedToast,
  type Relation,
  type Row,
  rowValues,
  type UnchangedToast,
  type UpdateChange,
  type Value,
} from '../../../plugin/protocol/index.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';
import { isLargeTupleRow, rowTextParams, type TextParam } from './large-rows.js';

/** How a replica treats rows that conflict with the primary's (config `conflicts`). */
export type ConflictMode = 'halt' | 'overwrite';

/** One SQL statement applying one change. */
export interface ChangeStatement {
  /** Statement text; identical for every change of the same shape, so it is prepared once. */
  readonly text: string;
  /** Parameters: text form, or a Buffer in binary form (set-based statements pass binary `text[]`). */
  readonly values: readonly (string | Buffer | null)[];
  /**
   * Every Buffer in `values` is a parameter in text form (the primary's bytes
   * of a large value), sent without being copied (see text-bind-query.ts).
   */
  readonly textBytes?: boolean;
  /** An update or delete must touch exactly one row; zero means the row is missing on the replica. */
  readonly expectsRow: boolean;
  /** Rows the statement carries (set-based ones); one when absent. */
  readonly rows?: number;
  /** For `COPY … FROM STDIN`: the rows in COPY's text format, sent right behind the command. */
  readonly copyData?: Buffer;
}

const tableOf = (r: Pick<Relation, 'schema' | 'name'>) => quoteQualified(r.schema, r.name);

/**
 * The WHERE clause identifying a row. Key columns compare with `=` (index use);
 * under REPLICA IDENTITY FULL every column is the key and some types have no
 * `=` (json, point), so their text forms are compared instead — the same text
 * the primary sent — and one matching row is chosen by ctid (duplicates allowed).
 */
function whereIdentity(
  change: UpdateChange | DeleteChange,
  values: (string | Buffer | null)[],
): string {
  const { relation } = change;
  const identity = identityOf(change);
  const full = relation.replicaIdentity === 'full';
  const conditions = relation.keyIndexes.map((columnIndex, i) => {
    const column = quoteIdent(relation.columns[columnIndex]?.name as string);
    const value = identity[i] as Value;
    if (isUnchangedToast(value))
      throw new Error(
        `unchanged TOAST value in the identity of ${relation.schema}.${relation.name}`,
      );
    if (value === null) return `${column} IS NULL`;
    values.push(value);
    return full ? `${column}::text = $${values.length}::text` : `${column} = $${values.length}`;
  });
  const where = conditions.length ? conditions.join(' AND ') : 'false';
  return full ? `ctid = (SELECT ctid FROM ${tableOf(relation)} WHERE ${where} LIMIT 1)` : where;
}

/** Whether inserts into `relation` become upserts: `conflicts: "overwrite"` on a keyed table. */
export function upserts(relation: Relation, mode: ConflictMode): boolean {
  return (
    mode === 'overwrite' && relation.keyIndexes.length > 0 && relation.replicaIdentity !== 'full'
  );
}

/**
 * With `conflicts: "overwrite"`, an insert whose key already exists on the
 * replica becomes an update to the primary's row (a no-op clause otherwise).
 */
export function onConflictClause(
  relation: Relation,
  quotedColumns: readonly string[],
  mode: ConflictMode,
): string {
  if (!upserts(relation, mode)) return '';
  const keys = relation.keyIndexes.map((i) => quotedColumns[i]);
  const others = quotedColumns.filter((_, i) => !relation.keyIndexes.includes(i));
  return others.length
    ? ` ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${others.map((c) => `${c} = excluded.${c}`).join(', ')}`
    : ` ON CONFLICT (${keys.join(', ')}) DO NOTHING`;
}

/** The statement that applies one row change (insert, update or delete). */
export function changeStatement(
  change: Exclude<Change, { kind: 'truncate' | 'message' }>,
  mode: ConflictMode,
): ChangeStatement {
  const { relation } = change;
  const table = tableOf(relation);
  switch (change.kind) {
    case 'insert': {
      const { params, textBytes } = paramsOf(change.row);
      const columns = relation.columns.map((c) => quoteIdent(c.name));
      const values = params.map((v) => (unchanged(v) ? null : v));
      const placeholders = columns.map((_, i) => `$${i + 1}`);
      let text = `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${placeholders.join(', ')})`;
      text += onConflictClause(relation, columns, mode);
      return { text, values, expectsRow: false, textBytes };
    }
    case 'update': {
      const { params, textBytes } = paramsOf(change.row);
      const values: (string | Buffer | null)[] = [];
      const sets: string[] = [];
      params.forEach((value, i) => {
        if (unchanged(value)) return; // the replica keeps its value
        values.push(value);
        sets.push(`${quoteIdent(relation.columns[i]?.name as string)} = $${values.length}`);
      });
      const where = whereIdentity(change, values);
      if (sets.length === 0)
        return { text: `SELECT 1 FROM ${table} WHERE ${where}`, values, expectsRow: true };
      return {
        text: `UPDATE ${table} SET ${sets.join(', ')} WHERE ${where}`,
        values,
        expectsRow: true,
        textBytes,
      };
    }
    case 'delete': {
      const values: (string | null)[] = [];
      return {
        text: `DELETE FROM ${table} WHERE ${whereIdentity(change, values)}`,
        values,
        expectsRow: true,
      };
    }
  }
}

/** A row's values as parameters: a large row's as views into its bytes, never strings. */
function paramsOf(row: Row): { params: readonly TextParam[]; textBytes: boolean } {
  return isLargeTupleRow(row)
    ? { params: rowTextParams(row), textBytes: true }
    : { params: rowValues(row), textBytes: false };
}

const unchanged = (value: TextParam): value is UnchangedToast =>
  !Buffer.isBuffer(value) && isUnchangedToast(value);

/** TRUNCATE of the change's tables, with its CASCADE and RESTART IDENTITY options. */
export function truncateStatement(change: Extract<Change, { kind: 'truncate' }>): string {
  // Never CASCADE, as native apply: the primary's cascade already lists every table it
  // reached, and a cascade here would wipe replica-local tables that reference them.
  return (
    `TRUNCATE ${change.relations.map(tableOf).join(', ')}` +
    `${change.restartIdentity ? ' RESTART IDENTITY' : ''}`
  );
}
