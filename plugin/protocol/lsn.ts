/**
 * Log sequence numbers. Postgres prints them as two hex halves (`16/B374D848`),
 * sometimes zero-padded; they must be compared as 64-bit integers, never as strings.
 */

/** An LSN in canonical text form: upper-case hex halves without padding, e.g. `0/1932550`. */
export type Lsn = string & { readonly __lsn: unique symbol };

/** The zero LSN, `0/0`. */
export const ZERO_LSN = '0/0' as Lsn;

/** Reads one hex half (1-8 digits); NaN when it is not one. */
function half(text: string): number {
  if (text.length < 1 || text.length > 8) return Number.NaN;
  // Number('0x…') rejects any non-hex character, unlike parseInt.
  return Number(`0x${text}`);
}

/**
 * Splits an LSN into its two 32-bit halves. This runs several times per
 * streamed transaction, so it avoids regular expressions and BigInt.
 */
export function lsnHalves(text: string): [high: number, low: number] {
  const slash = text.indexOf('/');
  const high = half(text.slice(0, slash));
  const low = half(text.slice(slash + 1));
  if (slash < 0 || Number.isNaN(high) || Number.isNaN(low)) {
    throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  }
  return [high, low];
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
  const [ah, al] = lsnHalves(a);
  const [bh, bl] = lsnHalves(b);
  return ah !== bh ? Math.sign(ah - bh) : Math.sign(al - bl);
}

/** Bytes between two LSNs (`to - from`), as a number (lag figures). */
export function lsnDistance(from: string, to: string): number {
  return Number(lsnToBigInt(to) - lsnToBigInt(from));
}
