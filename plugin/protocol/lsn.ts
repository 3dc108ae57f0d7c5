/**
 * Log sequence numbers. Postgres prints them as two hex halves (`16/B374D848`),
 * sometimes zero-padded; they must be compared as 64-bit integers, never as strings.
 */

/** An LSN in canonical text form: upper-case hex halves without padding, e.g. `0/1932550`. */
export type Lsn = string & { readonly __lsn: unique symbol };

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** The zero LSN, `0/0`. */
export const ZERO_LSN = '0/0' as Lsn;

/** Parses any textual LSN (padded or not) into its 64-bit value. */
export function lsnToBigInt(text: string): bigint {
  const match = LSN_PATTERN.exec(text);
  if (!match) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Formats a 64-bit value as a canonical LSN. */
export function lsnFromBigInt(value: bigint): Lsn {
  if (value < 0n || value > 0xffffffffffffffffn) throw new Error(`LSN out of range: ${value}`);
  const high = (value >> 32n).toString(16).toUpperCase();
  const low = (value & 0xffffffffn).toString(16).toUpperCase();
  return `${high}/${low}` as Lsn;
}

/** Normalises any textual LSN (e.g. `00000000/01932550`) to canonical form. */
export function toLsn(text: string): Lsn {
  return lsnFromBigInt(lsnToBigInt(text));
}

/** Orders two LSNs: negative if `a < b`, zero if equal, positive if `a > b`. */
export function compareLsn(a: string, b: string): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Bytes between two LSNs (`to - from`), as a number (lag figures). */
export function lsnDistance(from: string, to: string): number {
  return Number(lsnToBigInt(to) - lsnToBigInt(from));
}
