import { describe, expect, it } from 'vitest';
import { chooseCopyFormat } from '../../adapters/postgres/setup/copy-format.js';

const safe = (major: number) => ({ binarySafe: true, major });

describe('chooseCopyFormat', () => {
  it('copies in binary only when every node allows it and all run one major version', () => {
    expect(chooseCopyFormat(safe(15), [safe(15), safe(15)])).toBe('binary');
    expect(chooseCopyFormat(safe(15), [])).toBe('binary');
    // A type one node cannot take in binary, on the primary or on any replica.
    expect(chooseCopyFormat({ binarySafe: false, major: 15 }, [safe(15)])).toBe('text');
    expect(chooseCopyFormat(safe(15), [safe(15), { binarySafe: false, major: 15 }])).toBe('text');
    // Binary forms are only promised within one major version.
    expect(chooseCopyFormat(safe(15), [safe(15), safe(18)])).toBe('text');
    expect(chooseCopyFormat(safe(18), [safe(15)])).toBe('text');
  });
});
