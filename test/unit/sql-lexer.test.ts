import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseCapturedStatement } from '../../plugin/protocol/captured-statement.js';
import { capturedStatement, splitStatements } from '../../plugin/protocol/sql-statements.js';

const on = { standardConformingStrings: true };
const off = { standardConformingStrings: false };

describe('the statement splitter cuts where PostgreSQL does', () => {
  it('reads a dollar quote whose tag is not ASCII', () => {
    const text =
      'SELECT $é$; CREATE INDEX evil ON public.accounts ((public.f(id))); $é$; CREATE INDEX scratch_i ON public.scratch (x)';
    expect(splitStatements(text)).toEqual([
      'SELECT $é$; CREATE INDEX evil ON public.accounts ((public.f(id))); $é$',
      'CREATE INDEX scratch_i ON public.scratch (x)',
    ]);
    expect(capturedStatement(text, 1)).toBe('CREATE INDEX scratch_i ON public.scratch (x)');
  });

  it('escapes quotes with a backslash in plain strings when standard_conforming_strings is off', () => {
    const text =
      "SELECT 'a\\'; ALTER TABLE accounts ENABLE ALWAYS TRIGGER evil; -- '\n; ALTER TABLE scratch ADD COLUMN z int";
    expect(splitStatements(text, off)).toEqual([
      "SELECT 'a\\'; ALTER TABLE accounts ENABLE ALWAYS TRIGGER evil; -- '",
      'ALTER TABLE scratch ADD COLUMN z int',
    ]);
    expect(capturedStatement(text, 1, off)).toBe('ALTER TABLE scratch ADD COLUMN z int');
    expect(splitStatements(text, on)).toHaveLength(3);
  });

  it('ends a -- comment at a carriage return, nests block comments', () => {
    expect(splitStatements('SELECT 1 -- c\r; CREATE TABLE t ()')).toEqual([
      'SELECT 1 -- c',
      'CREATE TABLE t ()',
    ]);
    expect(splitStatements('/* a /* ; */ ; */ SELECT 1; SELECT 2')).toEqual([
      '/* a /* ; */ ; */ SELECT 1',
      'SELECT 2',
    ]);
  });

  it('reads $tag$ after identifier characters, non-ASCII ones too, as part of the name', () => {
    expect(splitStatements('SELECT 1 AS é$b$; CREATE TABLE t (); SELECT 1 AS x$b$')).toEqual([
      'SELECT 1 AS é$b$',
      'CREATE TABLE t ()',
      'SELECT 1 AS x$b$',
    ]);
    expect(splitStatements('SELECT a$b$; SELECT $b$;$b$')).toEqual([
      'SELECT a$b$',
      'SELECT $b$;$b$',
    ]);
  });

  it("reads E'' only at the start of a token, and continues a string across a newline", () => {
    expect(splitStatements("SELECT éE'\\'; CREATE TABLE t (); SELECT '\\'")).toEqual([
      "SELECT éE'\\'",
      'CREATE TABLE t ()',
      "SELECT '\\'",
    ]);
    // E'a' then a quote on the next line: one E'' string, whose \' escapes.
    expect(splitStatements("SELECT E'a'\n'\\'; CREATE TABLE evil ()'; CREATE TABLE t ()")).toEqual([
      "SELECT E'a'\n'\\'; CREATE TABLE evil ()'",
      'CREATE TABLE t ()',
    ]);
  });

  it("reads U&'' strings without backslash escapes, and B'' without doubled quotes", () => {
    expect(splitStatements("SELECT U&'d\\0061t\\'; CREATE TABLE t ()")).toEqual([
      "SELECT U&'d\\0061t\\'",
      'CREATE TABLE t ()',
    ]);
    expect(splitStatements("SELECT B'01''x;'; SELECT 1")).toEqual(["SELECT B'01''x;'", 'SELECT 1']);
    expect(
      chooseCapturedStatement({
        command: "COMMENT ON TABLE t IS U&'a'",
        ordinal: 1,
        standardConformingStrings: false,
      }),
    ).toEqual({
      refused: expect.stringMatching(/U&'' string/),
    });
    // PostgreSQL refuses U&'' with the setting off: this string was lexed with it on.
    expect(
      chooseCapturedStatement({ command: "SELECT U&'\\'; CREATE TABLE t ()", ordinal: 1 }),
    ).toEqual({ statement: 'CREATE TABLE t ()', standardConformingStrings: true });
  });

  it('cuts at every top-level semicolon, begin and end as names or not', () => {
    expect(splitStatements('SELECT 1 AS begin; CREATE TABLE t (); SELECT 1 AS end')).toEqual([
      'SELECT 1 AS begin',
      'CREATE TABLE t ()',
      'SELECT 1 AS end',
    ]);
  });
});

describe('a replica chooses the captured statement or refuses', () => {
  it('runs the statement the primary ran, with the setting it recorded', () => {
    const text =
      'SELECT $é$; CREATE INDEX evil ON public.accounts ((public.f(id))); $é$; CREATE INDEX scratch_i ON public.scratch (x)';
    expect(
      chooseCapturedStatement({
        command: text,
        ordinal: 1,
        tag: 'CREATE INDEX',
        standardConformingStrings: true,
      }),
    ).toEqual({
      statement: 'CREATE INDEX scratch_i ON public.scratch (x)',
      standardConformingStrings: true,
    });
    expect(
      chooseCapturedStatement({
        command: "ALTER TABLE t ADD CHECK (c ~ E'^\\\\d+$')",
        ordinal: 1,
        tag: 'ALTER TABLE',
        standardConformingStrings: true,
      }),
    ).toEqual({
      statement: "ALTER TABLE t ADD CHECK (c ~ E'^\\\\d+$')",
      standardConformingStrings: true,
    });
    // Alone in its string, with the setting recorded on: run with it.
    expect(
      chooseCapturedStatement({
        command: "ALTER TABLE t ADD CHECK (c ~ '^\\d+$')",
        ordinal: 1,
        tag: 'ALTER TABLE',
        standardConformingStrings: true,
      }),
    ).toEqual({
      statement: "ALTER TABLE t ADD CHECK (c ~ '^\\d+$')",
      standardConformingStrings: true,
    });
  });

  it('refuses a string that cuts differently with standard_conforming_strings on and off', () => {
    const text =
      "SELECT 'a\\'; ALTER TABLE accounts ENABLE ALWAYS TRIGGER evil; -- '\n; ALTER TABLE scratch ADD COLUMN z int";
    for (const standardConformingStrings of [true, false, undefined])
      expect(
        chooseCapturedStatement({
          command: text,
          ordinal: 1,
          tag: 'ALTER TABLE',
          standardConformingStrings,
        }),
      ).toEqual({
        refused: expect.stringMatching(/standard_conforming_strings on and off/),
      });
  });

  it('refuses a plain literal with a backslash where the setting it was lexed with is not known', () => {
    const alter = "ALTER TABLE t ALTER c SET DEFAULT 'a\\b'";
    for (const [command, standardConformingStrings] of [
      [alter, undefined],
      [alter, false],
      [`SET standard_conforming_strings = off; ${alter}`, true],
    ] as const)
      expect(
        chooseCapturedStatement({
          command,
          ordinal: 1,
          tag: 'ALTER TABLE',
          standardConformingStrings,
        }),
      ).toEqual({
        refused: expect.stringMatching(/backslash/),
      });
    expect(
      chooseCapturedStatement({
        command: `SELECT 1; ${alter.replace("'a", "E'a")}`,
        ordinal: 1,
        tag: 'ALTER TABLE',
      }),
    ).toEqual({
      statement: "ALTER TABLE t ALTER c SET DEFAULT E'a\\b'",
      standardConformingStrings: true,
    });
  });

  it('refuses text PostgreSQL would not run, and a statement of another tag', () => {
    for (const command of [
      "CREATE TABLE t (); SELECT 'x",
      'CREATE TABLE t (); SELECT (1; 2)',
      'CREATE TABLE t (c int DEFAULT 1e$a$ )',
    ])
      expect(chooseCapturedStatement({ command, ordinal: 1, tag: 'CREATE TABLE' })).toHaveProperty(
        'refused',
      );
    expect(
      chooseCapturedStatement({ command: 'DROP TABLE t', ordinal: 1, tag: 'CREATE TABLE' }),
    ).toEqual({
      refused: expect.stringMatching(/not the CREATE TABLE/),
    });
  });
});

/**
 * Pieces of SQL whose reading is easy to get wrong, each valid under the setting given;
 * joined with ` + ` so that no two strings continue one another across a newline.
 */
const FRAGMENTS = [
  'x1',
  'café',
  'a$b$',
  'é$t$',
  "'a;b'",
  "'it''s;'",
  "E'\\';x'",
  "e'\\\\'",
  "N'n;'",
  "B'01'",
  "X'1F'",
  '$$;$$',
  '$é$ ; $x$ $é$',
  "$tag$;'$tag$",
  '"q;""x"',
  'U&"a;"',
  "E'a'\n'\\';'",
  '-- c;\n',
  '-- c;\r',
  '/* a /* ; */ b; */',
  '(1, 2)',
  '1.5e3',
  '$1',
  'éE',
  '*--x\n',
];
const FOR_SCS = { on: ["'a\\'", "U&'u;'", "'x'\n'\\'"], off: ["'a\\';b'", "'\\\\'"] } as const;

describe('any statements joined, cut again', () => {
  for (const setting of ['on', 'off'] as const) {
    it(`gives the same statements with standard_conforming_strings ${setting}`, () => {
      const fragment = fc.constantFrom(...FRAGMENTS, ...FOR_SCS[setting]);
      const statement = fc
        .array(fragment, { maxLength: 6 })
        .map((parts) => ['SELECT', ...parts, 'z'].join(' + '));
      const gap = fc.constantFrom(' ', '\n', '\r\n', '\t', '');
      fc.assert(
        fc.property(fc.array(fc.tuple(statement, gap), { minLength: 1, maxLength: 5 }), (list) => {
          const text = list.map(([st, g]) => `${st};${g}`).join('');
          expect(splitStatements(text, { standardConformingStrings: setting === 'on' })).toEqual(
            list.map(([st]) => st),
          );
        }),
        { numRuns: 300 },
      );
    });
  }
});
