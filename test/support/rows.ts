import { TupleArena, TupleRow } from '../../adapters/postgres/source/pgoutput-tuple.js';
import { isUnchangedToast, rowValues, type Value } from '../../plugin/protocol/index.js';

const arena = new TupleArena();

/** pgoutput's TupleData bytes for `values` (text, NULL or unchanged TOAST), after its column count. */
export function tupleData(values: readonly Value[]): Buffer {
  return Buffer.concat(
    values.map((value) => {
      if (isUnchangedToast(value)) return Buffer.from('u');
      if (typeof value !== 'string') return Buffer.from('n');
      const text = Buffer.from(value);
      const head = Buffer.alloc(5);
      head.write('t');
      head.writeUInt32BE(text.length, 1);
      return Buffer.concat([head, text]);
    }),
  );
}

/** `values` as the stream's decoder keeps a row: a TupleRow over a copy of its bytes. */
export function tupleRow(values: readonly Value[]): TupleRow {
  const data = tupleData(values);
  return arena.copy(data, 0, data.length, values.length, !values.some(isUnchangedToast));
}

/**
 * `value` with every TupleRow in it (the stream keeps rows as bytes) replaced
 * by its array of values, looking into arrays and plain objects: packets and
 * changes compare by what they hold.
 */
export function readable<T>(value: T): T {
  if (value instanceof TupleRow) return rowValues(value) as T;
  if (Array.isArray(value)) return value.map(readable) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, readable(v)])) as T;
  return value;
}
