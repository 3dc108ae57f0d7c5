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

/** A row: values in the order of the relation's columns. */
export type Row = readonly Value[];

/** True for the unchanged-TOAST marker (also after a JSON round trip). */
export function isUnchangedToast(value: Value | undefined): value is UnchangedToast {
  return typeof value === 'object' && value !== null && value.unchangedToast === true;
}
