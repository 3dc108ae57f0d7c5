import { describe, expect, it } from 'vitest';
import { LsnText } from '../../adapters/postgres/source/lsn-text.js';
import { lsnFromHalves } from '../../plugin/protocol/index.js';

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
    for (let i = 0; i < 100_000; i++) {
      const low = (i * 2_654_435_761) >>> 0;
      expect(text.format(7, low)).toBe(lsnFromHalves(7, low));
    }
  });
});
