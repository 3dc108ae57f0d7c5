import { describe, expect, it } from 'vitest';
import { beforeCopy, schemaPoint } from '../../adapters/postgres/apply/captured-ddl.js';
import type { Lsn } from '../../plugin/protocol/index.js';

const lsn = (text: string) => text as Lsn;

describe("a replica's copy point", () => {
  it('is the latest copy of any table', () => {
    expect(schemaPoint([])).toBeNull();
    expect(schemaPoint(['0/0', '0/16B3748', '0/9A00000', '0/16B3750'].map(lsn))).toBe('0/9A00000');
  });

  it('has what was committed strictly before it; nothing is before a missing point', () => {
    expect(beforeCopy(lsn('0/100'), lsn('0/200'))).toBe(true);
    expect(beforeCopy(lsn('0/200'), lsn('0/200'))).toBe(false);
    expect(beforeCopy(lsn('0/300'), lsn('0/200'))).toBe(false);
    expect(beforeCopy(lsn('1/0'), lsn('0/FFFFFFFF'))).toBe(false);
    expect(beforeCopy(lsn('0/100'), null)).toBe(false);
  });
});
