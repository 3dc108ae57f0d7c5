import {
  isUnchangedToast,
  LARGE_ROW_BYTES,
  type Row,
  UNCHANGED_TOAST,
  type UnchangedToast,
} from '../../../plugin/protocol/index.js';
import { NULL_COLUMN, TupleRow, UNCHANGED_COLUMN } from '../source/pgoutput-tuple.js';

/** A parameter in text form: the primary's bytes, text, NULL, or unchanged TOAST. */
export type TextParam = Buffer | string | null | UnchangedToast;

/**
 * Whether `row` is applied on its own, each value sent as a view into the
 * primary's message (see text-bind-query.ts): encoding a large row with its
 * batch copied every value into the batch's COPY data or arrays (twice while a
 * buffer grew), and the row-by-row path made a string per value and replica.
 * Only rows kept as bytes are.
 */
export function isLargeTupleRow(row: Row): row is TupleRow {
  return row instanceof TupleRow && row.size >= LARGE_ROW_BYTES;
}

/** Every value of `row` as a view into its bytes (no copy). */
export function rowTextParams(row: TupleRow): TextParam[] {
  const offsets = new Int32Array(row.length);
  const lengths = new Int32Array(row.length);
  row.locate(offsets, lengths);
  const params: TextParam[] = [];
  for (let i = 0; i < row.length; i++) {
    const offset = offsets[i] as number;
    if (offset === NULL_COLUMN) params.push(null);
    else if (offset === UNCHANGED_COLUMN) params.push(UNCHANGED_TOAST);
    else params.push(row.bytes.subarray(offset, offset + (lengths[i] as number)));
  }
  return params;
}

/** Which columns of `row` hold unchanged TOAST, without making its values strings. */
export function unchangedColumns(row: Row): boolean[] {
  const unchanged: boolean[] = [];
  if (row instanceof TupleRow) {
    const offsets = new Int32Array(row.length);
    row.locate(offsets, new Int32Array(row.length));
    for (const offset of offsets) unchanged.push(offset === UNCHANGED_COLUMN);
  } else for (let i = 0; i < row.length; i++) unchanged.push(isUnchangedToast(row.at(i)));
  return unchanged;
}

/** `rows` split into those encoded with their batch and the large ones (the same array when none is). */
export function splitLarge(rows: readonly Row[]): { small: readonly Row[]; large: TupleRow[] } {
  if (!rows.some(isLargeTupleRow)) return { small: rows, large: [] };
  return { small: rows.filter((r) => !isLargeTupleRow(r)), large: rows.filter(isLargeTupleRow) };
}
