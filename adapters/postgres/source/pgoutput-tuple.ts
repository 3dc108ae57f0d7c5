import { type Row, UNCHANGED_TOAST, type Value } from '../../../plugin/protocol/index.js';

const TEXT = 0x74; /* t */
const NULL = 0x6e; /* n */
const UNCHANGED = 0x75; /* u */

/** Where {@link TupleRow.locate} puts a NULL column, and an unchanged-TOAST one. */
export const NULL_COLUMN = -1;
export const UNCHANGED_COLUMN = -2;

/**
 * A row as pgoutput sent it: the columns of a TupleData (each `n`, or `t`
 * with a length and the text bytes), kept as bytes. A value becomes a string
 * only when something reads it ({@link at}); the replicas get the bytes
 * themselves (see row-encoding.ts). Holding one small object per row instead
 * of an array of strings also keeps the garbage collector's copying down: the
 * rows of a batch live from decoding until every replica has applied them.
 *
 * A new row with unchanged-TOAST columns is kept too (`complete` false), so a
 * large value updated next to an unchanged one never becomes a string; only
 * when the old row stands in for those columns (REPLICA IDENTITY FULL) is the
 * tuple decoded to values instead.
 */
export class TupleRow implements Row {
  constructor(
    /** The bytes that hold the row (shared with other rows). */
    readonly bytes: Buffer,
    /** Offset of the first column's kind byte. */
    readonly start: number,
    /** Number of columns. */
    readonly length: number,
    /** Bytes of the row's columns (kind bytes and lengths included). */
    readonly size: number,
    /** False when a column is unchanged TOAST. */
    readonly complete = true,
  ) {}

  /** The value of column `index`, decoded from the bytes. */
  at(index: number): Value | undefined {
    if (index < 0 || index >= this.length) return undefined;
    const { bytes } = this;
    let at = this.start;
    for (let i = 0; i < index; i++)
      at = bytes[at] === TEXT ? at + 5 + bytes.readUInt32BE(at + 1) : at + 1;
    const kind = bytes[at];
    if (kind === TEXT) return utf8Text(bytes, at + 5, bytes.readUInt32BE(at + 1));
    return kind === NULL ? null : UNCHANGED_TOAST;
  }

  /**
   * Writes each column's place into `offsets` (offset of its text, or
   * {@link NULL_COLUMN} / {@link UNCHANGED_COLUMN}) and `lengths`, from index
   * 0: one walk for all columns.
   */
  locate(offsets: Int32Array, lengths: Int32Array): void {
    const { bytes } = this;
    let at = this.start;
    for (let i = 0; i < this.length; i++) {
      if (bytes[at] === TEXT) {
        const length = bytes.readUInt32BE(at + 1);
        offsets[i] = at + 5;
        lengths[i] = length;
        at += 5 + length;
      } else {
        offsets[i] = bytes[at] === NULL ? NULL_COLUMN : UNCHANGED_COLUMN;
        lengths[i] = 0;
        at += 1;
      }
    }
  }
}

/**
 * The end of a TupleData's columns that starts at `start` in `buf` (after its
 * column count) in a message ending at `limit`, or -1 when a column is neither
 * `t` nor `n` (nor `u`, when `toast`). Throws when the message is cut short.
 */
export function tupleEnd(
  buf: Buffer,
  start: number,
  limit: number,
  count: number,
  toast = false,
): number {
  let at = start;
  for (let i = 0; i < count; i++) {
    if (at >= limit) throw new Error('truncated pgoutput message');
    const kind = buf[at];
    if (kind === NULL) at += 1;
    else if (kind === TEXT) {
      if (at + 5 > limit) throw new Error('truncated pgoutput message');
      at += 5 + buf.readUInt32BE(at + 1);
    } else if (kind === UNCHANGED && toast) at += 1;
    else return -1;
  }
  if (at > limit) throw new Error('truncated pgoutput message');
  return at;
}

const SLAB_BYTES = 256 * 1024;

/**
 * Copies tuples out of the protocol buffer (which the driver reuses) into
 * large slabs, many rows to a slab: one copy and one small object per row
 * instead of a Buffer each. A slab is freed once no row in it is referenced.
 */
export class TupleArena {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  /** A TupleRow over a copy of `buf[start, end)` holding `count` columns. */
  copy(buf: Buffer, start: number, end: number, count: number, complete: boolean): TupleRow {
    const size = end - start;
    if (size > SLAB_BYTES / 4) {
      const own = Buffer.allocUnsafeSlow(size);
      buf.copy(own, 0, start, end);
      return new TupleRow(own, 0, count, size, complete);
    }
    if (this.used + size > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const at = this.used;
    copyBytes(buf, start, size, this.slab, at);
    this.used += size;
    return new TupleRow(this.slab, at, count, size, complete);
  }
}

/**
 * Copies `src[start, start + count)` to `dst` at `at`. A loop beats
 * Buffer#copy's fixed cost (~70 ns, a view allocated per call) only below ~24
 * bytes (~3 ns a byte).
 */
export function copyBytes(
  src: Buffer,
  start: number,
  count: number,
  dst: Buffer,
  at: number,
): void {
  if (count <= 24) for (let i = 0; i < count; i++) dst[at + i] = src[start + i] as number;
  else src.copy(dst, at, start, start + count);
}

const char = String.fromCharCode as (...codes: (number | undefined)[]) => string;

/** `length` bytes at `at` as UTF-8 text; short ASCII (most keys and numbers) without a native call. */
export function utf8Text(buf: Buffer, at: number, length: number): string {
  const end = at + length;
  if (length > 8) return buf.toString('utf8', at, end);
  for (let i = at; i < end; i++)
    if ((buf[i] as number) >= 0x80) return buf.toString('utf8', at, end);
  return shortAscii(buf, at, length);
}

/** Up to 8 ASCII bytes as a string, built in one step (appending char by char allocated a string per byte). */
function shortAscii(b: Buffer, at: number, length: number): string {
  switch (length) {
    case 0:
      return '';
    case 1:
      return char(b[at]);
    case 2:
      return char(b[at], b[at + 1]);
    case 3:
      return char(b[at], b[at + 1], b[at + 2]);
    case 4:
      return char(b[at], b[at + 1], b[at + 2], b[at + 3]);
    case 5:
      return char(b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4]);
    case 6:
      return char(b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]);
    case 7:
      return char(b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6]);
    default:
      return char(
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
        b[at + 6],
        b[at + 7],
      );
  }
}
