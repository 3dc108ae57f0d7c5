import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LsnText } from '../../adapters/postgres/source/lsn-text.js';
import { compareLsn, type Lsn, lsnFromHalves } from '../../plugin/protocol/index.js';

describe('LsnText', () => {
  it('formats every digit count as lsnFromHalves does', () => {
    const text = new LsnText();
    const lows = [0, 1, 0xf, 0x10, 0xabc, 0xffffff, 0x1000000, 0x1932550, 0xfffffff];
    lows.push(0x10000000, 0xb374d848, 0xffffffff);
    for (const high of [0, 0x16, 0xffffffff, 0])
      for (const low of lows) expect(text.format(high, low)).toBe(lsnFromHalves(high, low));
  });

  it('agrees with lsnFromHalves over a spread of low halves', () => {
    const text = new LsnText();
    // Compared without expect per value: 100,000 expect calls took seconds on a busy machine.
    const differing: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const low = (i * 2_654_435_761) >>> 0;
      if (text.format(7, low) !== lsnFromHalves(7, low)) differing.push(low);
    }
    expect(differing).toEqual([]);
  });
});

describe('LsnText over any sequence of LSNs', () => {
  const boundary = [0, 1, 0xf, 0x10, 0xffffff, 0x1000000, 0xfffffff, 0x10000000, 0x7fffffff];
  const half = fc.oneof(
    fc.constantFrom(...boundary, 0x80000000, 0xfffffffe, 0xffffffff),
    fc.nat(0xffffffff),
  );

  it('formats each as lsnFromHalves does, the high half changing or not', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(half, half), { minLength: 1, maxLength: 20 }), (lsns) => {
        const text = new LsnText();
        for (const [high, low] of lsns)
          expect(text.format(high, low)).toBe(lsnFromHalves(high, low));
      }),
      { numRuns: 5000 },
    );
  });

  it('orders as the WAL does across the 32-bit boundary of the low half', () => {
    const text = new LsnText();
    const lsns = [text.format(0, 0xfffffffe), text.format(0, 0xffffffff), text.format(1, 0)];
    expect(lsns).toEqual(['0/FFFFFFFE', '0/FFFFFFFF', '1/0']);
    expect(compareLsn(lsns[1] as Lsn, lsns[2] as Lsn)).toBeLessThan(0);
    expect(text.format(0, 0x10)).toBe('0/10');
  });
});
