import type { Relation } from './relation.js';
import type { Row, Value } from './value.js';

/** A new row. */
export interface InsertChange {
  readonly kind: 'insert';
  readonly relation: Relation;
  /** The new row, aligned with `relation.columns`. */
  readonly row: Row;
}

/** A changed row. */
export interface UpdateChange {
  readonly kind: 'update';
  readonly relation: Relation;
  /** The new row; a column may hold the unchanged-TOAST marker. */
  readonly row: Row;
  /**
   * Old identity values aligned with `relation.keyIndexes`, when the primary sent
   * them (the key changed, or REPLICA IDENTITY FULL); otherwise `null` and the
   * identity is the new row's key columns.
   */
  readonly key: readonly Value[] | null;
}

/** A removed row. */
export interface DeleteChange {
  readonly kind: 'delete';
  readonly relation: Relation;
  /** Old identity values aligned with `relation.keyIndexes`. */
  readonly key: readonly Value[];
}

/** TRUNCATE of one or more relations, as one statement. */
export interface TruncateChange {
  readonly kind: 'truncate';
  readonly relations: readonly Relation[];
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
}

/** A transactional logical message with a `lockstep.` prefix, at its place in the transaction. */
export interface MessageChange {
  readonly kind: 'message';
  /** Full prefix, e.g. `lockstep.two_phase`. */
  readonly prefix: string;
  /** Content decoded as UTF-8 (lockstep writes its own messages as text). */
  readonly content: string;
}

/** One change inside a packet. */
export type Change = InsertChange | UpdateChange | DeleteChange | TruncateChange | MessageChange;

/** The prefix every lockstep logical message starts with. */
export const LOCKSTEP_MESSAGE_PREFIX = 'lockstep.';

/** The values of `row`'s key columns, aligned with `relation.keyIndexes`. */
export function keyValuesOf(relation: Relation, row: Row): Value[] {
  return relation.keyIndexes.map((index) => row.at(index) ?? null);
}

/** Identity values of an update or delete: the old key if sent, else the new row's key columns. */
export function identityOf(change: UpdateChange | DeleteChange): readonly Value[] {
  return change.key ?? keyValuesOf(change.relation, (change as UpdateChange).row);
}
