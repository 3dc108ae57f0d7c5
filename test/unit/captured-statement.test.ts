import { describe, expect, it } from 'vitest';
import { chooseCapturedStatement } from '../../plugin/protocol/captured-statement.js';
import { withoutConcurrently } from '../../plugin/protocol/sql-statements.js';

// The reviewer's cases: each must refuse, or pick exactly the statement the primary ran.
const refused = (pattern: RegExp) => ({ refused: expect.stringMatching(pattern) });
const picked = (statement: string) => ({ statement, standardConformingStrings: true });

describe('a replica refuses what it cannot count or cut as the primary did', () => {
  it('refuses a statement that flips standard_conforming_strings while it runs', () => {
    const command =
      "ALTER TABLE accounts ALTER COLUMN balance TYPE int USING balance + 0 * length(set_config('standard_conforming' || '_strings', 'on', false) || '\\'), ENABLE ALWAYS TRIGGER evil, ALTER COLUMN balance SET DEFAULT length('); SELECT length(' || ' -- '\n)";
    // The trigger recorded on (USING flipped it); the primary lexed it with off.
    expect(
      chooseCapturedStatement({
        command,
        ordinal: 1,
        tag: 'ALTER TABLE',
        standardConformingStrings: true,
      }),
    ).toEqual(refused(/standard_conforming_strings on and off/));
  });

  it('refuses DDL after a COMMIT or ROLLBACK, which restarts the count', () => {
    for (const [command, tag] of [
      ['BEGIN; DROP TABLE accounts; ROLLBACK; DROP TABLE victim', 'DROP TABLE'],
      [
        'BEGIN; SAVEPOINT s; DROP TABLE accounts; ROLLBACK TO SAVEPOINT s; DROP TABLE victim2; COMMIT',
        'DROP TABLE',
      ],
      ['CREATE TABLE v3 (x int); COMMIT; CREATE TABLE v4 (x int)', 'CREATE TABLE'],
      ['CREATE TABLE v3 (x int); END; CREATE TABLE v4 (x int)', 'CREATE TABLE'],
      ["CREATE TABLE v3 (x int); PREPARE TRANSACTION 'g'; CREATE TABLE v4 (x int)", 'CREATE TABLE'],
    ] as const)
      expect(chooseCapturedStatement({ command, ordinal: 1, tag })).toEqual(
        refused(/restarts the count/),
      );
  });

  it('refuses what a third reviewer used to shift the count (an alias, a table named database, RESET)', () => {
    const payload = 'ALTER TABLE accounts ENABLE ALWAYS TRIGGER pwn';
    const real = 'ALTER TABLE public.accounts ALTER COLUMN balance SET DEFAULT 0';
    // The primary counts the last statement 2 (the temporary-table ALTER is 1); no reading may pick the payload.
    for (const [command, ordinal, tag] of [
      [`SELECT 1 AS into; ${payload}; ${real}`, 2, 'ALTER TABLE'],
      [`${payload}; RESET ALL; ${real}`, 1, 'ALTER TABLE'],
      [`${payload}; SET lockstep.ddl_seen = ''; ${real}`, 1, 'ALTER TABLE'],
      [
        `REVOKE SELECT ON database FROM public; ALTER TABLE revoke ENABLE TRIGGER USER; ${payload}`,
        1,
        'REVOKE',
      ],
      [
        `REVOKE SELECT ON database FROM public; ALTER TABLE revoke ENABLE TRIGGER USER; ${payload}`,
        2,
        'ALTER TABLE',
      ],
    ] as const) {
      const choice = chooseCapturedStatement({ command, ordinal, tag });
      expect(choice).not.toEqual(picked(payload));
      if (!('refused' in choice)) expect(choice.statement).not.toMatch(/pwn/);
    }
    // A table named database is a table: its REVOKE fires and is counted.
    expect(
      chooseCapturedStatement({
        command: 'REVOKE SELECT ON database FROM public; CREATE TABLE t ()',
        ordinal: 2,
        tag: 'CREATE TABLE',
      }),
    ).toEqual(picked('CREATE TABLE t ()'));
  });

  it('keeps other SET and RESET, and counts a role named mapping as the role it is', () => {
    for (const [command, ordinal, statement] of [
      [`SET "TimeZone" = 'UTC'; CREATE TABLE a ()`, 1, 'CREATE TABLE a ()'],
      ['RESET search_path; CREATE TABLE a ()', 1, 'CREATE TABLE a ()'],
      [
        'SET ROLE app; CREATE TABLE a (); RESET ROLE; CREATE INDEX i ON a (x)',
        2,
        'CREATE INDEX i ON a (x)',
      ],
      ['CREATE USER mapping; CREATE TABLE a (); CREATE TABLE b ()', 2, 'CREATE TABLE b ()'],
      [
        'CREATE USER MAPPING IF NOT EXISTS FOR app SERVER s; CREATE TABLE b ()',
        2,
        'CREATE TABLE b ()',
      ],
    ] as const) {
      const tag = statement.startsWith('CREATE INDEX') ? 'CREATE INDEX' : 'CREATE TABLE';
      expect(chooseCapturedStatement({ command, ordinal, tag })).toEqual(picked(statement));
    }
  });

  it('keeps the common migration shape: BEGIN, DDL, COMMIT', () => {
    const command = 'BEGIN; CREATE TABLE a (x int); CREATE INDEX a_x ON a (x); COMMIT;';
    expect(chooseCapturedStatement({ command, ordinal: 2, tag: 'CREATE INDEX' })).toEqual(
      picked('CREATE INDEX a_x ON a (x)'),
    );
  });

  it('counts as the trigger fires: not for global objects, for SELECT INTO', () => {
    expect(
      chooseCapturedStatement({
        command:
          'REVOKE CONNECT ON DATABASE "postgres" FROM app; REVOKE ALL ON scratch FROM public',
        ordinal: 1,
        tag: 'REVOKE',
      }),
    ).toEqual(picked('REVOKE ALL ON scratch FROM public'));
    expect(
      chooseCapturedStatement({
        command:
          "COMMENT ON ROLE app IS 'x'; GRANT CONNECT ON DATABASE d TO app; SECURITY LABEL FOR p ON TABLESPACE s IS 'y'; COMMENT ON TABLE t IS 'z'",
        ordinal: 1,
        tag: 'COMMENT',
      }),
    ).toEqual(picked("COMMENT ON TABLE t IS 'z'"));
    expect(
      chooseCapturedStatement({
        command: 'SELECT 1 AS a INTO TEMP tt2; CREATE TABLE a1 (x int); CREATE TABLE a2 (x int)',
        ordinal: 2,
        tag: 'CREATE TABLE',
      }),
    ).toEqual(picked('CREATE TABLE a1 (x int)'));
  });

  it('refuses a string holding a statement whose firing it cannot tell', () => {
    expect(
      chooseCapturedStatement({
        command: 'WITH s AS (SELECT 1 AS a) SELECT a INTO t9 FROM s; CREATE TABLE a1 (x int)',
        ordinal: 2,
        tag: 'CREATE TABLE',
      }),
    ).toEqual(refused(/may or may not fire/));
  });

  it('refuses BEGIN ATOMIC, and reads begin and end as names', () => {
    expect(
      chooseCapturedStatement({
        command:
          'CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; INSERT INTO scratch VALUES (42); SELECT 1 AS end',
        ordinal: 1,
        tag: 'CREATE FUNCTION',
      }),
    ).toEqual(refused(/BEGIN ATOMIC/));
    expect(
      chooseCapturedStatement({
        command:
          'CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; INSERT INTO scratch VALUES (43); SELECT 1 AS end',
        ordinal: 1,
        tag: 'CREATE FUNCTION',
      }),
    ).toEqual(picked('CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1'));
  });

  it('drops CONCURRENTLY after a leading comment too', () => {
    expect(withoutConcurrently('/* c */ CREATE INDEX CONCURRENTLY i ON t (x)')).toBe(
      '/* c */ CREATE INDEX i ON t (x)',
    );
    expect(withoutConcurrently('-- c\nDROP INDEX CONCURRENTLY i')).toBe('-- c\nDROP INDEX i');
  });
});
