import { describe, expect, it } from 'vitest';
import { classifyApplyError } from '../../adapters/postgres/apply/apply-error-classifier.js';

const place = {
  node: 'replica1',
  url: 'postgres://app:secret@replica1:5432/app',
  version: 7,
  table: 'public.item',
};

describe('classifyApplyError', () => {
  it.each([
    ['22001', 'value too long for type character varying(5)'],
    ['22026', 'bit string length 4 does not match type bit(3)'],
    ['22003', 'numeric field overflow'],
  ])(
    'makes a value that does not fit the replica column (%s) a schema error with its fix',
    (code, message) => {
      const error = classifyApplyError(Object.assign(new Error(message), { code }), place);
      expect(error).toMatchObject({ kind: 'schema', version: 7 });
      expect(error.message).toContain(
        `[replica1, table public.item] applying version 7 failed: ${message} [${code}]`,
      );
      expect(error.message).toMatch(
        /fix: a column on replica "replica1" is narrower than the primary's/,
      );
    },
  );

  it('leaves other data errors to the general fix', () => {
    const error = classifyApplyError(
      Object.assign(new Error('insert or update violates foreign key'), { code: '23503' }),
      place,
    );
    expect(error.kind).toBe('other');
  });

  it('says a session ended for idling in a transaction was this process stalling, retried', () => {
    const error = classifyApplyError(
      Object.assign(new Error('terminating connection due to idle-in-transaction timeout'), {
        code: '25P03',
      }),
      place,
    );
    expect(error.kind).toBe('unresponsive');
    expect(error.message).toMatch(/paused or stalled/);
  });
});
