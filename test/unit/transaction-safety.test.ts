import { describe, expect, it } from 'vitest';
import { unsafeStatement } from '../../plugin/migrate/transaction-safety.js';

describe('unsafeStatement', () => {
  it('names statements that cannot be part of a prepared transaction, with the alternative', () => {
    expect(
      unsafeStatement('ALTER TABLE t ADD c int;\nCREATE INDEX CONCURRENTLY i ON t (c);'),
    ).toEqual({
      statement: 'CREATE INDEX CONCURRENTLY i ON t (c)',
      alternative: expect.stringMatching(/drop CONCURRENTLY/),
    });
    for (const sql of [
      'drop index concurrently i',
      'VACUUM t',
      'create temp table x (a int)',
      'NOTIFY chan',
      'COMMIT',
      'alter system set work_mem = 1',
      'create database d',
    ]) {
      expect(unsafeStatement(sql), sql).not.toBeNull();
    }
  });

  it('does not see statements inside comments, strings or function bodies', () => {
    expect(
      unsafeStatement(`-- CREATE INDEX CONCURRENTLY later
        /* vacuum */ INSERT INTO t VALUES ('commit; vacuum');
        CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; COMMIT; END $$;
        CREATE INDEX i ON t (c);`),
    ).toBeNull();
  });
});
