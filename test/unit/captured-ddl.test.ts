import { describe, expect, it } from 'vitest';
import { alreadyInCopy, schemaPoint } from '../../adapters/postgres/apply/captured-ddl.js';
import type { Lsn } from '../../plugin/protocol/index.js';

const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('captured DDL replayed before the replica copy', () => {
  it('takes the latest copy of any table as the schema point', () => {
    expect(schemaPoint([])).toBeNull();
    expect(
      schemaPoint(['0/0' as Lsn, '0/16B3748' as Lsn, '0/9A00000' as Lsn, '0/16B3750' as Lsn]),
    ).toBe('0/9A00000' as Lsn);
  });

  it('tolerates "already exists" and "does not exist" only before the copy', () => {
    expect(alreadyInCopy(pgError('42701'), '0/100' as Lsn, '0/200' as Lsn)).toBe(true);
    expect(alreadyInCopy(pgError('42P01'), '0/100' as Lsn, '0/200' as Lsn)).toBe(true);
    expect(alreadyInCopy(pgError('42701'), '0/200' as Lsn, '0/200' as Lsn)).toBe(false);
    expect(alreadyInCopy(pgError('42701'), '0/300' as Lsn, '0/200' as Lsn)).toBe(false);
    expect(alreadyInCopy(pgError('42701'), '0/100' as Lsn, null)).toBe(false);
  });

  it('never tolerates other errors, a missing role among them', () => {
    expect(alreadyInCopy(pgError('23505'), '0/100' as Lsn, '0/200' as Lsn)).toBe(false);
    expect(alreadyInCopy(pgError('42501'), '0/100' as Lsn, '0/200' as Lsn)).toBe(false);
    expect(
      alreadyInCopy(pgError('42704', 'role "app" does not exist'), '0/100' as Lsn, '0/200' as Lsn),
    ).toBe(false);
    expect(
      alreadyInCopy(pgError('42704', 'index "i" does not exist'), '0/100' as Lsn, '0/200' as Lsn),
    ).toBe(true);
    expect(alreadyInCopy(new Error('no code'), '0/100' as Lsn, '0/200' as Lsn)).toBe(false);
    expect(alreadyInCopy(null, '0/100' as Lsn, '0/200' as Lsn)).toBe(false);
  });
});
