import type { Row } from '../../../plugin/protocol/index.js';
import { copyBytes, TupleRow } from '../source/pgoutput-tuple.js';

/** Postgres's OID of `text`, written into every binary `text[]`. */
const TEXT_OID = 25;

/**
 * The letter after the backslash for each byte COPY's text format escapes
 * (tab, newline, carriage return, backslash), 0 for the rest. UTF-8's
 * multi-byte characters use only bytes >= 0x80, so a byte test cannot split one.
 */
const COPY_ESCAPES = new Uint8Array(256);
COPY_ESCAPES[0x09] = 0x74;
COPY_ESCAPES[0x0a] = 0x6e;
COPY_ESCAPES[0x0d] = 0x72;
COPY_ESCAPES[0x5c] = 0x5c;

/**
 * A growing byte buffer. Values from a {@link TupleRow} are copied byte for
 * byte from the primary's text; other rows' values (strings) are written as
 * UTF-8. Either way the bytes are those the primary sent.
 */
class ByteWriter {
  private buf: Buffer;
  /** Bytes written. */
  length = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 64));
  }

  /** Makes room for `bytes` more. */
  reserve(bytes: number): void {
    if (this.length + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + bytes));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  int32(value: number): void {
    this.reserve(4);
    this.buf.writeInt32BE(value, this.length);
    this.length += 4;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buf[this.length++] = value;
  }

  /** `src[start, start + count)` as is. */
  bytes(src: Buffer, start: number, count: number): void {
    this.reserve(count);
    copyBytes(src, start, count, this.buf, this.length);
    this.length += count;
  }

  /** `text` as UTF-8, preceded by its byte length. */
  prefixedText(text: string): void {
    const count = Buffer.byteLength(text);
    this.int32(count);
    this.reserve(count);
    this.length += this.buf.write(text, this.length);
  }

  /** `src[start, start + count)` with COPY text format's escapes (backslash, tab, newline, carriage return). */
  copyEscaped(src: Buffer, start: number, count: number): void {
    if (count > 64) {
      // A long value usually has nothing to escape: four native searches, then one copy.
      const value = src.subarray(start, start + count);
      if (
        value.indexOf(0x5c) < 0 &&
        value.indexOf(0x09) < 0 &&
        value.indexOf(0x0a) < 0 &&
        value.indexOf(0x0d) < 0
      ) {
        this.bytes(src, start, count);
        return;
      }
    }
    this.reserve(count * 2);
    const { buf } = this;
    let at = this.length;
    const end = start + count;
    for (let i = start; i < end; i++) {
      const b = src[i] as number;
      const letter = COPY_ESCAPES[b] as number;
      if (letter === 0) buf[at++] = b;
      else {
        buf[at++] = 0x5c;
        buf[at++] = letter;
      }
    }
    this.length = at;
  }

  /** Writes a 32-bit integer at `offset` (already written). */
  setInt32(offset: number, value: number): void {
    this.buf.writeInt32BE(value, offset);
  }

  /** The bytes written. */
  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Scratch space for one row's column places (grown to the widest row seen). */
let offsets = new Int32Array(64);
let lengths = new Int32Array(64);

function locate(row: TupleRow): void {
  if (row.length > offsets.length) {
    offsets = new Int32Array(row.length * 2);
    lengths = new Int32Array(row.length * 2);
  }
  row.locate(offsets, lengths);
}

/**
 * Columns `columns` of `rows` as binary `text[]` parameters (array_recv's
 * format: no quoting or escaping for the server to undo, nothing to re-encode
 * here), one Buffer per column. An unchanged-TOAST marker goes as NULL: such
 * columns are left out of the statements that would read them.
 */
export function binaryTextArrays(rows: readonly Row[], columns: readonly number[]): Buffer[] {
  // Arrays built by push (not map): one array shape on every call, so the optimised code is not thrown away.
  const writers: ByteWriter[] = [];
  for (let c = 0; c < columns.length; c++) {
    const w = new ByteWriter(20 + rows.length * 16);
    w.int32(1); // dimensions
    w.int32(0); // has NULLs: set below
    w.int32(TEXT_OID);
    w.int32(rows.length);
    w.int32(1); // lower bound
    writers.push(w);
  }
  const hasNull = new Uint8Array(columns.length);
  for (const row of rows) {
    if (row instanceof TupleRow) {
      locate(row);
      for (let c = 0; c < columns.length; c++) {
        const w = writers[c] as ByteWriter;
        const column = columns[c] as number;
        const offset = offsets[column] as number;
        if (offset < 0) {
          w.int32(-1);
          hasNull[c] = 1;
        } else {
          const count = lengths[column] as number;
          w.int32(count);
          w.bytes(row.bytes, offset, count);
        }
      }
      continue;
    }
    for (let c = 0; c < columns.length; c++) {
      const w = writers[c] as ByteWriter;
      const value = row.at(columns[c] as number);
      if (typeof value === 'string') w.prefixedText(value);
      else {
        w.int32(-1);
        hasNull[c] = 1;
      }
    }
  }
  return writers.map((w, c) => {
    if (hasNull[c]) w.setInt32(4, 1);
    return w.done();
  });
}

/** `rows` (every column) in COPY's text format, one line each; NULL is `\N`. */
export function copyTextRows(rows: readonly Row[]): Buffer {
  const w = new ByteWriter(rows.length * 64);
  for (const row of rows) {
    if (row instanceof TupleRow) {
      locate(row);
      for (let c = 0; c < row.length; c++) {
        if (c > 0) w.byte(0x09);
        const offset = offsets[c] as number;
        if (offset < 0) nullMarker(w);
        else w.copyEscaped(row.bytes, offset, lengths[c] as number);
      }
    } else {
      for (let c = 0; c < row.length; c++) {
        if (c > 0) w.byte(0x09);
        const value = row.at(c);
        // An unchanged-TOAST marker is never in a whole row; it would be NULL.
        if (typeof value !== 'string') nullMarker(w);
        else {
          const bytes = Buffer.from(value);
          w.copyEscaped(bytes, 0, bytes.length);
        }
      }
    }
    w.byte(0x0a);
  }
  return w.done();
}

function nullMarker(w: ByteWriter): void {
  w.byte(0x5c);
  w.byte(0x4e);
}
