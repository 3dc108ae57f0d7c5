import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clientConfig,
  redactUrl,
  scrubSecrets,
} from '../../adapters/postgres/connection/connection-url.js';
import { LibpqClient } from '../../adapters/postgres/connection/libpq-client.js';
import { resolveConnection } from '../../plugin/config/resolve-connection.js';
import {
  ConnectionStringError,
  parseConnectionString,
} from '../../plugin/ports/connection-string.js';
import { formatKeywordDsn } from '../../plugin/ports/keyword-dsn.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-connection-url-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ca = path.join(dir, 'ca.crt');
writeFileSync(ca, 'THE CA');

describe('connection strings', () => {
  it('reads URLs and DSNs into the same parameters', () => {
    const expected = {
      host: 'db',
      port: '5433',
      user: 'u s',
      password: 'p@ss:w/rd',
      dbname: 'app',
      sslmode: 'require',
    };
    expect(
      parseConnectionString('postgresql://u%20s:p%40ss%3Aw%2Frd@db:5433/app?sslmode=require'),
    ).toEqual(expected);
    expect(
      parseConnectionString(
        "host=db port=5433 user='u s' password=p@ss:w/rd dbname=app sslmode=require",
      ),
    ).toEqual(expected);
  });

  it('keeps a + in a URL query as a plus sign, as libpq does', () => {
    expect(parseConnectionString('postgres://h/db?password=a+b').password).toBe('a+b');
  });

  it('refuses unknown parameters and bad values, with a hint for pg-only spellings', () => {
    const message = (text: string) => {
      try {
        parseConnectionString(text);
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(ConnectionStringError);
        return (error as Error).message;
      }
    };
    expect(message('postgres://h/db?ssl=true')).toMatch(
      /unknown connection parameter "ssl" \(use sslmode/,
    );
    expect(message('host=h sslmode=on')).toMatch(/^sslmode must be one of disable, allow, prefer/);
    expect(message('host=h connect_timeout=0')).toMatch(/positive number of seconds/);
    expect(message('postgres://a:1,b:2/db')).toMatch(/one host per node/);
    expect(message('mysql://h/db')).toMatch(
      /^a postgres:\/\/ or postgresql:\/\/ URL, or a keyword DSN/,
    );
  });
});

describe('redaction', () => {
  it('hides the password of URLs and keyword DSNs, quoted, escaped or unterminated', () => {
    expect(redactUrl('postgres://u:s3cret@h/db')).toBe('postgres://u:***@h/db');
    expect(redactUrl('postgres://u@h/db?password=s3cret&sslmode=require')).toBe(
      'postgres://u@h/db?password=***&sslmode=require',
    );
    expect(redactUrl("host=h password='s3 \\'cr\\' et' dbname=app")).toBe(
      'host=h password=*** dbname=app',
    );
    expect(redactUrl('host=h password=s3\\ cret dbname=app')).toBe(
      'host=h password=*** dbname=app',
    );
    expect(redactUrl("host=h password = 'never closed")).toBe('host=h password = ***');
  });

  it('leaves no password in a redacted DSN, whatever it is', () => {
    const password = fc.string({ minLength: 1 }).map((s) => `Zq${s}`);
    fc.assert(
      fc.property(password, (secret) => {
        const dsn = formatKeywordDsn([
          ['host', 'db'],
          ['password', secret],
          ['dbname', 'app'],
        ]);
        expect(redactUrl(dsn)).not.toContain(secret);
        expect(redactUrl(dsn)).toMatch(/^host=db password=\*\*\* dbname=app$/);
      }),
    );
  });

  it('scrubs a password that came from a file, the environment or ~/.pgpass out of a message', () => {
    const secret = path.join(dir, 'secret');
    writeFileSync(secret, 'from file/with:odd chars');
    const fromFile = resolveConnection('host=h user=u', {
      env: {},
      home: dir,
      passwordFile: secret,
    });
    expect(scrubSecrets('auth failed for "from file/with:odd chars"', fromFile)).toBe(
      'auth failed for "***"',
    );
    expect(redactUrl(fromFile)).not.toContain('from file');
    const fromEnv = resolveConnection('host=h user=u', {
      env: { PGPASSWORD: 'envSecret' },
      home: dir,
    });
    expect(scrubSecrets('x envSecret y', fromEnv)).toBe('x *** y');
    expect(scrubSecrets("x it's y", "host=h password='it\\'s'")).toBe('x *** y');
  });
});

describe('clientConfig', () => {
  const config = (query: string) => clientConfig(`postgresql://u:pw@h:5433/app?${query}`);

  it('sets every part itself, so pg reads no PG* variable and no ~/.pgpass', () => {
    expect(config('sslmode=disable')).toMatchObject({
      Client: LibpqClient,
      host: 'h',
      port: 5433,
      user: 'u',
      database: 'app',
      password: 'pw',
      ssl: false,
      application_name: 'lockstep',
      connectionTimeoutMillis: 10_000,
    });
    const none = clientConfig('postgresql://u@h/app?sslmode=disable');
    expect(() => (none.password as () => string)()).toThrow(/asks for a password and none is set/);
  });

  it('gives sslmode its libpq meaning', () => {
    const rootcert = `sslrootcert=${encodeURIComponent(ca)}`;
    expect(config('sslmode=prefer')).toMatchObject({
      ssl: { rejectUnauthorized: false },
      optionalTls: 'prefer',
    });
    expect(config('sslmode=allow')).toMatchObject({ optionalTls: 'allow' });
    expect(config('sslmode=require')).toMatchObject({ ssl: { rejectUnauthorized: false } });
    expect(config('sslmode=require').optionalTls).toBeUndefined();
    for (const mode of ['require', 'verify-ca']) {
      const ssl = config(`sslmode=${mode}&${rootcert}`).ssl as Record<string, unknown>;
      expect(ssl).toMatchObject({ ca: 'THE CA' });
      expect(ssl.rejectUnauthorized).toBeUndefined();
      expect((ssl.checkServerIdentity as () => unknown)()).toBeUndefined();
    }
    expect(config(`sslmode=verify-full&${rootcert}`).ssl).toEqual({ ca: 'THE CA' });
    expect(config('sslmode=verify-full&sslrootcert=system').ssl).toEqual({});
  });

  it('passes options and connect_timeout on', () => {
    expect(config('sslmode=disable&options=-c%20x%3Dy&connect_timeout=3')).toMatchObject({
      options: '-c x=y',
      connectionTimeoutMillis: 3_000,
    });
  });
});
