/**
 * Column values travel in Postgres's own text form, exactly as pgoutput sends
 * them, so nothing is lost to JavaScript types (microseconds, numeric
 * precision, int8, bytea all stay intact).
 */

/**
 * Marks a TOASTed value the primary did not change and did not send. It is not
 * NULL: an update carrying it must leave the replica's value as it is.
 * A plain object (not a symbol) so it survives JSON transport.
 */
export interface UnchangedToast {
  readonly unchangedToast: true;
}

/** The single marker instance used by lockstep's own code. */
export const UNCHANGED_TOAST: UnchangedToast = Object.freeze({ unchangedToast: true });

/** One column value: text form, SQL NULL, or "unchanged TOAST, not sent". */
export type Value = string | null | UnchangedToast;

/**
 * A row: values in the order of the relation's columns. An array of values is
 * one; the stream's adapter hands over rows that keep the primary's bytes and
 * decode a value only when asked, so that values nobody reads as text (most of
 * them: they go to the replicas as bytes) never become JavaScript strings.
 */
export interface Row {
  /** Number of columns. */
  readonly length: number;
  /** The value of column `index`. */
  at(index: number): Value | undefined;
  /**
   * Whether no column holds the unchanged-TOAST marker, when known without
   * reading the values (reading a large value would make it a string).
   */
  readonly complete?: boolean;
  /** Bytes of the row's text form as the primary sent it, when the row keeps them. */
  readonly size?: number;
}

/**
 * Rows from this size on are large: applied on their own, without copies of
 * their values, and not kept in memory for deltas once every replica has them.
 */
export const LARGE_ROW_BYTES = 1024 * 1024;

/** Whether `row` is known to be large (see {@link LARGE_ROW_BYTES}). */
export function isLargeRow(row: Row): boolean {
  return (row.size ?? 0) >= LARGE_ROW_BYTES;
}

/** Every value of `row`, as an array. */
export function rowValues(row: Row): Value[] {
  const values = new Array<Value>(row.length);
  for (let i = 0; i < row.length; i++) values[i] = row.at(i) ?? null;
  return values;
}

/** Whether any column of `row` holds the unchanged-TOAST marker. */
export function hasUnchangedToast(row: Row): boolean {
  if (row.complete !== undefined) return !row.complete;
  for (let i = 0; i < row.length; i++) if (isUnchangedToast(row.at(i))) return true;
  return false;
}

/** True for the unchanged-TOAST marker (also after a JSON round trip). */
export function isUnchangedToast(value: Value | undefined): value is UnchangedToast {
  return typeof value === 'object' && value !== null && value.unchangedToast === true;
}
