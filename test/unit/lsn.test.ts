import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareLsn, lsnFromBigInt, lsnToBigInt, toLsn } from '../../plugin/protocol/lsn.js';

describe('LSN', () => {
  it('normalises padded and lower-case forms', () => {
    expect(toLsn('00000000/01932550')).toBe('0/1932550');
    expect(toLsn('16/b374d848')).toBe('16/B374D848');
  });

  it('compares numerically, not as text', () => {
    expect(compareLsn('0/9', '0/10')).toBeLessThan(0);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBeGreaterThan(0);
    expect(compareLsn('00000000/0000000A', '0/A')).toBe(0);
  });

  it('rejects text that is not an LSN', () => {
    for (const text of [
      '12345',
      '',
      '/',
      '0/',
      '/0',
      'G/0',
      '0/g',
      '0/123456789',
      '0/1 ',
      '\x10/0',
      '0x1/0',
      '1/2/3',
    ])
      expect(() => toLsn(text), text).toThrow(/not an LSN/);
    expect(() => compareLsn('0/1', '0/Z')).toThrow(/not an LSN/);
    expect(() => compareLsn('Z/1', '0/1')).toThrow(/not an LSN/);
  });

  it('round-trips every 64-bit value and keeps its order', () => {
    const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        expect(lsnToBigInt(lsnFromBigInt(a))).toBe(a);
        expect(Math.sign(compareLsn(lsnFromBigInt(a), lsnFromBigInt(b)))).toBe(
          a < b ? -1 : a > b ? 1 : 0,
        );
      }),
    );
  });
});
