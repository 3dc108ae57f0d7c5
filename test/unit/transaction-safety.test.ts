import { describe, expect, it } from 'vitest';
import { unsafeStatement } from '../../plugin/migrate/transaction-safety.js';
import {
  capturedStatement,
  matchesCommandTag,
  splitStatements,
} from '../../plugin/protocol/sql-statements.js';

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

describe('capturedStatement', () => {
  it('finds the n-th DDL statement of a multi-statement query string, skipping DML and transaction control', () => {
    const text = `BEGIN; SET LOCAL search_path = shop;
      CREATE TABLE orders (id int PRIMARY KEY, note text DEFAULT 'a;b');
      INSERT INTO orders VALUES (1, $$x;y$$);
      -- ALTER TABLE in a comment;
      ALTER TABLE orders RENAME COLUMN note TO remark;
      COMMIT;`;
    expect(capturedStatement(text, 1)).toBe(
      "CREATE TABLE orders (id int PRIMARY KEY, note text DEFAULT 'a;b')",
    );
    expect(capturedStatement(text, 2)).toMatch(
      /^-- ALTER TABLE in a comment;\s+ALTER TABLE orders RENAME/,
    );
    expect(capturedStatement(text, 3)).toBeNull();
    expect(capturedStatement('CREATE INDEX i ON t (c)', 1)).toBe('CREATE INDEX i ON t (c)');
  });

  it('splits at top-level semicolons only', () => {
    expect(
      splitStatements(
        `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $b$ SELECT 1; $b$; SELECT ';'; /* ; */`,
      ),
    ).toEqual(['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $b$ SELECT 1; $b$', "SELECT ';'"]);
  });
});

describe('the statement splitter reads SQL as PostgreSQL lexes it', () => {
  it("keeps an E'' string's escaped quote and a nested comment whole", () => {
    expect(splitStatements("SELECT E'\\'; DROP TABLE accounts; --';\nCREATE TABLE t4 ()")).toEqual([
      "SELECT E'\\'; DROP TABLE accounts; --'",
      'CREATE TABLE t4 ()',
    ]);
    expect(splitStatements('/* /* */ ; DROP TABLE x; */ CREATE TABLE t ()')).toEqual([
      '/* /* */ ; DROP TABLE x; */ CREATE TABLE t ()',
    ]);
    // A plain string does not escape with a backslash.
    expect(splitStatements("SELECT 'a\\'; CREATE TABLE u ()")).toEqual([
      "SELECT 'a\\'",
      'CREATE TABLE u ()',
    ]);
  });

  it('runs a captured statement only when it matches the command tag the primary reported', () => {
    expect(
      matchesCommandTag('CREATE UNLOGGED TABLE IF NOT EXISTS t (id int)', 'CREATE TABLE'),
    ).toBe(true);
    expect(matchesCommandTag('create unique index i on t (c)', 'CREATE INDEX')).toBe(true);
    expect(matchesCommandTag('DROP TABLE accounts', 'CREATE TABLE')).toBe(false);
    expect(matchesCommandTag('CREATE TABLE a (); CREATE TABLE b ()', 'CREATE TABLE')).toBe(false);
    // A single-statement string has only ordinal 1.
    expect(capturedStatement('CREATE EXTENSION citext', 2)).toBeNull();
  });
});
