import { describe, expect, it } from 'vitest';
import { alreadyInCopy, schemaPoint } from '../../adapters/postgres/ddl-catch-up.js';

const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('captured DDL replayed before the replica copy', () => {
  it('takes the latest copy of any table as the schema point', () => {
    expect(schemaPoint([])).toBeNull();
    expect(schemaPoint(['0/0', '0/16B3748', '0/9A00000', '0/16B3750'])).toBe('0/9A00000');
  });

  it('tolerates "already exists" and "does not exist" only before the copy', () => {
    expect(alreadyInCopy(pgError('42701'), '0/100', '0/200')).toBe(true);
    expect(alreadyInCopy(pgError('42P01'), '0/100', '0/200')).toBe(true);
    expect(alreadyInCopy(pgError('42701'), '0/200', '0/200')).toBe(false);
    expect(alreadyInCopy(pgError('42701'), '0/300', '0/200')).toBe(false);
    expect(alreadyInCopy(pgError('42701'), '0/100', null)).toBe(false);
  });

  it('never tolerates other errors, a missing role among them', () => {
    expect(alreadyInCopy(pgError('23505'), '0/100', '0/200')).toBe(false);
    expect(alreadyInCopy(pgError('42501'), '0/100', '0/200')).toBe(false);
    expect(alreadyInCopy(pgError('42704', 'role "app" does not exist'), '0/100', '0/200')).toBe(
      false,
    );
    expect(alreadyInCopy(pgError('42704', 'index "i" does not exist'), '0/100', '0/200')).toBe(
      true,
    );
    expect(alreadyInCopy(new Error('no code'), '0/100', '0/200')).toBe(false);
    expect(alreadyInCopy(null, '0/100', '0/200')).toBe(false);
  });
});
