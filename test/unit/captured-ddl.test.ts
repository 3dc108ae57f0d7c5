import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  beforeCopy,
  type DdlPlace,
  runCapturedDdl,
  schemaPoint,
} from '../../adapters/postgres/apply/captured-ddl.js';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import type { Lsn } from '../../plugin/protocol/index.js';

const lsn = (text: string) => text as Lsn;

describe("a replica's copy point", () => {
  it('is the latest copy of any table', () => {
    expect(schemaPoint([])).toBeNull();
    expect(schemaPoint(['0/0', '0/16B3748', '0/9A00000', '0/16B3750'].map(lsn))).toBe('0/9A00000');
  });

  it('has what was committed strictly before it; nothing is before a missing point', () => {
    expect(beforeCopy(lsn('0/100'), lsn('0/200'))).toBe(true);
    expect(beforeCopy(lsn('0/200'), lsn('0/200'))).toBe(false);
    expect(beforeCopy(lsn('0/300'), lsn('0/200'))).toBe(false);
    expect(beforeCopy(lsn('1/0'), lsn('0/FFFFFFFF'))).toBe(false);
    expect(beforeCopy(lsn('0/100'), null)).toBe(false);
  });
});

describe('a captured statement that fails on a replica', () => {
  it('is quoted in the error with its string literals blanked out', async () => {
    const refused = Object.assign(new Error('permission denied for foreign server app'), {
      code: '42501',
    });
    const client = { query: async () => Promise.reject(refused) } as unknown as pg.ClientBase;
    const place: DdlPlace = {
      node: 'eu',
      stream: 'lockstep',
      version: 7,
      lsn: lsn('0/300'),
      schemaPoint: null,
      explain: (error) =>
        new ApplyError({ node: 'eu', kind: 'schema', version: 7, problem: String(error), fix: '' }),
    };
    const command =
      "CREATE USER MAPPING FOR app SERVER app OPTIONS (user 'app', password 'Zq-s3cret')";
    const failed = await runCapturedDdl(
      client,
      JSON.stringify({ searchPath: 'public', command, role: 'app' }),
      place,
    ).catch((error: ApplyError) => error);
    expect(failed).toBeInstanceOf(ApplyError);
    expect((failed as ApplyError).message).not.toContain('Zq-s3cret');
    expect((failed as ApplyError).message).toContain(
      "CREATE USER MAPPING FOR app SERVER app OPTIONS (user '', password '')",
    );
  });

  it('is not quoted past its first quote when refused as readable either way', async () => {
    const client = { query: async () => ({ rows: [] }) } as unknown as pg.ClientBase;
    const place = {
      node: 'eu',
      stream: 'lockstep',
      version: 7,
      lsn: lsn('0/300'),
      schemaPoint: null,
      explain: (error: unknown) =>
        new ApplyError({ node: 'eu', kind: 'schema', version: 7, problem: String(error), fix: '' }),
    } satisfies DdlPlace;
    // Cut differently with standard_conforming_strings on and off: refused.
    const command =
      "SELECT 'a\\'; CREATE USER MAPPING FOR app SERVER app OPTIONS (password 'Hun\\'ter2Secret'); --'\n; CREATE TABLE t ()";
    const refused = await runCapturedDdl(
      client,
      JSON.stringify({ searchPath: 'public', command, role: 'app', tag: 'CREATE TABLE' }),
      place,
    ).catch((error: ApplyError) => error);
    expect(refused).toBeInstanceOf(ApplyError);
    expect((refused as ApplyError).message).toMatch(/not run here: .* — in SELECT …/);
    expect((refused as ApplyError).message).not.toContain('ter2Secret');
  });
});
