/**
 * Log sequence numbers. Postgres prints them as two hex halves (`16/B374D848`),
 * sometimes zero-padded; they must be compared as 64-bit integers, never as strings.
 */

/** An LSN in canonical text form: upper-case hex halves without padding, e.g. `0/1932550`. */
export type Lsn = string & { readonly __lsn: unique symbol };

/** The zero LSN, `0/0`. */
export const ZERO_LSN = '0/0' as Lsn;

/** The value of hex digits `text[from..to)` (1-8 of them); NaN when they are not. */
function half(text: string, from: number, to: number): number {
  if (to - from < 1 || to - from > 8) return Number.NaN;
  let value = 0;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    const lower = code | 0x20; // A-F to a-f
    const digit =
      code >= 0x30 && code <= 0x39
        ? code - 0x30
        : lower >= 0x61 && lower <= 0x66
          ? lower - 0x57
          : -1;
    if (digit < 0) return Number.NaN;
    value = value * 16 + digit;
  }
  return value;
}

/** Throws the error every parser here gives for text that is not an LSN. */
function notAnLsn(text: string): never {
  throw new Error(`not an LSN: ${JSON.stringify(text)}`);
}

/** The high half of an LSN. */
function highOf(text: string, slash: number): number {
  const high = half(text, 0, slash);
  return Number.isNaN(high) ? notAnLsn(text) : high;
}

/** The low half of an LSN. */
function lowOf(text: string, slash: number): number {
  const low = half(text, slash + 1, text.length);
  return slash < 0 || Number.isNaN(low) ? notAnLsn(text) : low;
}

/**
 * Splits an LSN into its two 32-bit halves. This runs several times per
 * streamed transaction, so it avoids regular expressions, BigInt and substrings.
 */
export function lsnHalves(text: string): [high: number, low: number] {
  const slash = text.indexOf('/');
  return [highOf(text, slash), lowOf(text, slash)];
}

/** Parses any textual LSN (padded or not) into its 64-bit value. */
export function lsnToBigInt(text: string): bigint {
  const [high, low] = lsnHalves(text);
  return (BigInt(high) << 32n) | BigInt(low);
}

/** The canonical LSN of two 32-bit halves (as the wire protocol carries them). */
export function lsnFromHalves(high: number, low: number): Lsn {
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}` as Lsn;
}

/** Formats a 64-bit value as a canonical LSN. */
export function lsnFromBigInt(value: bigint): Lsn {
  if (value < 0n || value > 0xffffffffffffffffn) throw new Error(`LSN out of range: ${value}`);
  return lsnFromHalves(Number(value >> 32n), Number(value & 0xffffffffn));
}

/** Normalises any textual LSN (e.g. `00000000/01932550`) to canonical form. */
export function toLsn(text: string): Lsn {
  const [high, low] = lsnHalves(text);
  return lsnFromHalves(high, low);
}

/** Orders two LSNs: negative if `a < b`, zero if equal, positive if `a > b`. */
export function compareLsn(a: string, b: string): number {
  // Allocation-free: replicas compare a packet's LSN per table it touches.
  const aSlash = a.indexOf('/');
  const bSlash = b.indexOf('/');
  const ah = highOf(a, aSlash);
  const bh = highOf(b, bSlash);
  if (ah !== bh) return Math.sign(ah - bh);
  return Math.sign(lowOf(a, aSlash) - lowOf(b, bSlash));
}

/** Bytes between two LSNs (`to - from`), as a number (lag figures). */
export function lsnDistance(from: string, to: string): number {
  return Number(lsnToBigInt(to) - lsnToBigInt(from));
}

/** The LSN one byte before `lsn`: a point that every record starting at `lsn` is past. */
export function lsnBefore(lsn: string): Lsn {
  return lsnFromBigInt(lsnToBigInt(lsn) - 1n);
}

/**
 * Where version 0 stands for a stream whose slot was made at `consistentPoint`.
 * The slot's snapshot holds what committed before that point, and a
 * transaction whose commit record starts exactly there is decoded, with that
 * LSN; numbering takes only transactions past a position, so version 0 must
 * stand just before the point or that transaction is in neither the copy nor
 * the stream.
 */
export function versionZeroLsn(consistentPoint: string): Lsn {
  return lsnBefore(consistentPoint);
}
