import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { matchPgpass, parsePgpass, readPgpass } from '../../plugin/config/pgpass.js';

const target = { host: 'db', port: '5432', database: 'app', user: 'lockstep' };
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-pgpass-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('~/.pgpass as libpq reads it', () => {
  it('uses the first line whose four fields match, literally or by *', () => {
    const entries = parsePgpass(
      [
        '# a comment line',
        'other:5432:app:lockstep:no',
        'db:5433:*:lockstep:no',
        'db:*:app:*:first',
        '*:*:*:*:second',
      ].join('\n'),
    );
    expect(matchPgpass(entries, target)).toBe('first');
    expect(matchPgpass(entries, { ...target, host: 'elsewhere' })).toBe('second');
    expect(matchPgpass(parsePgpass('db:5432:app:someone:x'), target)).toBeUndefined();
  });

  it('reads \\: and \\\\ inside fields and the password, CRLF line ends, and ignores short lines', () => {
    const entries = parsePgpass(
      'db:5432:app:lock\\:step:pa\\:ss\\\\word\r\ndb:5432:app\n\\*:*:*:*:star\n',
    );
    expect(matchPgpass(entries, { ...target, user: 'lock:step' })).toBe('pa:ss\\word');
    // An escaped star is a literal host "*", not a wildcard.
    expect(matchPgpass(entries, target)).toBeUndefined();
    expect(matchPgpass(entries, { ...target, host: '*' })).toBe('star');
  });

  it('ends the password at an unescaped colon, as libpq does', () => {
    expect(matchPgpass(parsePgpass('*:*:*:*:secret:extra'), target)).toBe('secret');
  });

  it('finds, for any values, the password of a line written with escapes', () => {
    const escaped = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
    const value = fc.string({ minLength: 1 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(value, value, value, value, value, (host, port, database, user, password) => {
        fc.pre(host !== '*' && port !== '*' && database !== '*' && user !== '*');
        const line = [host, port, database, user, password].map(escaped).join(':');
        fc.pre(!line.startsWith('#'));
        expect(matchPgpass(parsePgpass(line), { host, port, database, user })).toBe(password);
      }),
    );
  });

  it('ignores a file that group or others may read, or that is missing', () => {
    const file = path.join(dir, 'pgpass');
    writeFileSync(file, '*:*:*:*:secret\n', { mode: 0o600 });
    expect(matchPgpass(readPgpass(file), target)).toBe('secret');
    chmodSync(file, 0o640);
    expect(readPgpass(file)).toEqual([]);
    expect(readPgpass(path.join(dir, 'missing'))).toEqual([]);
  });
});
