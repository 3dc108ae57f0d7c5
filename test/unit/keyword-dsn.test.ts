import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DsnSyntaxError,
  formatKeywordDsn,
  looksLikeKeywordDsn,
  parseKeywordDsn,
} from '../../plugin/ports/keyword-dsn.js';

const parsed = (text: string) => Object.fromEntries(parseKeywordDsn(text));

describe('keyword DSNs, read as libpq reads them', () => {
  it('takes bare and quoted values, spaces around "=", and \\\' and \\\\ escapes', () => {
    expect(
      parsed(
        `host=db.example  port = 5433\tdbname='my app' user=o\\'neil password='x \\'y\\' \\\\z'`,
      ),
    ).toEqual({
      host: 'db.example',
      port: '5433',
      dbname: 'my app',
      user: "o'neil",
      password: "x 'y' \\z",
    });
  });

  it('keeps the last of a keyword given twice, and empty quoted values', () => {
    expect(parsed("host=a host=b password=''")).toEqual({ host: 'b', password: '' });
  });

  it('refuses what libpq refuses, without quoting a value', () => {
    expect(() => parseKeywordDsn('host=db secret')).toThrow(DsnSyntaxError);
    expect(() => parseKeywordDsn('host=db secret')).toThrow(
      /^missing "=" after the keyword at character 9$/,
    );
    expect(() => parseKeywordDsn("password='never closed")).toThrow(/not closed/);
    expect(() => parseKeywordDsn("password='never closed")).not.toThrow(/never/);
  });

  it('tells a DSN from a URL', () => {
    expect(looksLikeKeywordDsn('host=db dbname=app')).toBe(true);
    expect(looksLikeKeywordDsn('  dbname = app')).toBe(true);
    expect(looksLikeKeywordDsn('postgres://u@h/db?sslmode=require')).toBe(false);
    expect(looksLikeKeywordDsn('public.*')).toBe(false);
  });

  it('reads back whatever it writes (any value: spaces, quotes, backslashes, "=")', () => {
    const keyword = fc.stringMatching(/^[a-z_]{1,12}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(keyword, fc.string()), { selector: (p) => p[0] }),
        (pairs) => {
          expect([...parseKeywordDsn(formatKeywordDsn(pairs))]).toEqual(pairs);
        },
      ),
    );
  });
});
