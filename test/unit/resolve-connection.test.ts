import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConnection } from '../../plugin/config/resolve-connection.js';
import { parseConnectionString } from '../../plugin/ports/connection-string.js';

const home = mkdtempSync(path.join(os.tmpdir(), 'lockstep-resolve-'));
const empty = mkdtempSync(path.join(os.tmpdir(), 'lockstep-resolve-empty-'));
afterAll(() => {
  rmSync(home, { recursive: true, force: true });
  rmSync(empty, { recursive: true, force: true });
});

/** What a resolved connection says, by libpq keyword. */
const resolved = (text: string, options: Parameters<typeof resolveConnection>[1] = {}) =>
  parseConnectionString(
    resolveConnection(text, { env: {}, home: empty, osUser: 'me', ...options }),
  );

const file = (name: string, content: string, mode = 0o600) => {
  const p = path.join(home, name);
  writeFileSync(p, content, { mode });
  return p;
};

describe('resolving a node connection', () => {
  it('fills what the string does not say with libpq defaults', () => {
    expect(resolved('host=db')).toEqual({
      host: 'db',
      port: '5432',
      user: 'me',
      dbname: 'me',
      sslmode: 'prefer',
    });
  });

  it('takes PG* variables where the string is silent, never over it', () => {
    const env = {
      PGHOST: 'envhost',
      PGPORT: '6000',
      PGUSER: 'envuser',
      PGDATABASE: 'envdb',
      PGSSLMODE: 'require',
    };
    expect(resolved('postgres:///', { env })).toEqual({
      host: 'envhost',
      port: '6000',
      user: 'envuser',
      dbname: 'envdb',
      sslmode: 'require',
    });
    expect(resolved('postgres://u@h:1/d?sslmode=disable', { env })).toMatchObject({
      host: 'h',
      port: '1',
      user: 'u',
      dbname: 'd',
      sslmode: 'disable',
    });
    expect(() => resolved('host=h', { env: { PGSSLMODE: 'on' } })).toThrow(
      /sslmode must be one of .* \(from the PG\* variables\)/,
    );
  });

  it('takes the password from passwordFile, the string, PGPASSWORD, then the password file, in that order', () => {
    const secret = file('secret', 'from-file\n');
    const pgpass = file('pgpass', 'h:5432:*:u:from-pgpass\n');
    const base = 'host=h user=u';
    expect(resolved(base, { passwordFile: secret, env: { PGPASSWORD: 'env' } }).password).toBe(
      'from-file',
    );
    expect(resolved(`${base} password=inline`, { env: { PGPASSWORD: 'env' } }).password).toBe(
      'inline',
    );
    expect(resolved(base, { env: { PGPASSWORD: 'env', PGPASSFILE: pgpass } }).password).toBe('env');
    expect(resolved(base, { env: { PGPASSFILE: pgpass } }).password).toBe('from-pgpass');
    expect(resolved(`${base} passfile=${pgpass}`).password).toBe('from-pgpass');
    expect(resolved(`${base} port=5433`, { env: { PGPASSFILE: pgpass } }).password).toBeUndefined();
  });

  it('finds ~/.pgpass and ~/.postgresql certificates in the home directory', () => {
    const own = mkdtempSync(path.join(os.tmpdir(), 'lockstep-home-'));
    try {
      writeFileSync(path.join(own, '.pgpass'), '*:*:*:*:home-pass\n', { mode: 0o600 });
      mkdirSync(path.join(own, '.postgresql'));
      writeFileSync(path.join(own, '.postgresql', 'root.crt'), 'CA');
      expect(resolved('host=h sslmode=verify-full', { home: own })).toMatchObject({
        password: 'home-pass',
        sslrootcert: path.join(own, '.postgresql', 'root.crt'),
      });
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('refuses, naming the problem and never the password', () => {
    const secret = file('secret2', 'pw');
    const problems = [
      () => resolved('host=h password=Zq-inline', { passwordFile: secret }),
      () => resolved('host=h', { passwordFile: path.join(home, 'missing') }),
      () => resolved('host=h', { passwordFile: file('blank', '\n') }),
      () => resolved('host=h sslmode=verify-ca'),
      () => resolved('host=h sslmode=require sslrootcert=system'),
      () => resolved(`host=h sslmode=verify-full sslrootcert=${path.join(home, 'nope.crt')}`),
      () => resolved(`host=h sslcert=${secret}`),
    ].map((attempt) => {
      try {
        attempt();
        return 'no error';
      } catch (error) {
        return (error as Error).message;
      }
    });
    expect(problems).toEqual([
      'a password both in the connection string and in passwordFile: keep one',
      `cannot read passwordFile ${path.join(home, 'missing')}: ENOENT`,
      `passwordFile ${path.join(home, 'blank')} is empty`,
      'sslmode=verify-ca needs sslrootcert: the CA certificate that signed the server certificate',
      'sslrootcert=system needs sslmode=verify-full',
      `cannot read sslrootcert ${path.join(home, 'nope.crt')}: ENOENT`,
      'sslcert and sslkey go together (a client certificate and its key)',
    ]);
  });

  it('drops application_name (lockstep names its sessions) and keeps options and connect_timeout', () => {
    expect(
      resolved("host=h application_name=x options='-c work_mem=64MB' connect_timeout=3"),
    ).toMatchObject({ options: '-c work_mem=64MB', connect_timeout: '3' });
    expect(resolved('host=h application_name=x').application_name).toBeUndefined();
  });

  it('keeps a Unix socket directory and an IPv6 host through the canonical URL', () => {
    expect(resolved('host=/var/run/postgresql dbname=app').host).toBe('/var/run/postgresql');
    expect(resolved('postgresql://u@[::1]:5433/app').host).toBe('::1');
  });
});
