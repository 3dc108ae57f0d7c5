import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAuthority } from '../../adapters/local-postgres/cluster-tls.js';
import { connectNode, endClient } from '../../adapters/postgres/connection/node-connection.js';
import { resolveConnection } from '../../plugin/config/resolve-connection.js';
import { useClusters } from '../support/use-clusters.js';

/** libpq's sslmode meanings, the password sources and the errors, against a TLS-only and a plain server. */
const PASSWORD = "it's a \\ secret";
const clusters = useClusters({
  replicas: 1,
  primary: { tls: { hba: ['hostssl all secret_user 127.0.0.1/32 scram-sha-256'] } },
});
const tlsOnly = () => clusters.primary;
const plain = () => clusters.replicas[0] as (typeof clusters.replicas)[number];
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-connection-modes-'));
const warnings: string[] = [];
const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);

beforeAll(async () => {
  process.on('warning', onWarning);
  await tlsOnly().query(`CREATE ROLE secret_user LOGIN PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
});
afterAll(() => {
  process.off('warning', onWarning);
  rmSync(dir, { recursive: true, force: true });
});

/** Connects as lockstep does (resolved at load, then clientConfig) and says whether the session is encrypted. */
async function encrypted(
  connection: string,
  options: Parameters<typeof resolveConnection>[1] = {},
) {
  const url = resolveConnection(connection, { env: {}, home: dir, ...options });
  const client = await connectNode('primary', url);
  try {
    const { rows } = await client.query<{ ssl: boolean }>(
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    return rows[0]?.ssl;
  } finally {
    await endClient(client);
  }
}

const on = (cluster: { port: number }, query: string) =>
  `postgres://postgres@127.0.0.1:${cluster.port}/postgres?${query}`;

describe('connections as libpq makes them', () => {
  it('encrypts on a TLS-only server with allow, prefer, require, verify-ca and verify-full', async () => {
    const ca = encodeURIComponent(tlsOnly().tls?.caFile ?? '');
    for (const query of [
      'sslmode=allow',
      'sslmode=prefer',
      'sslmode=require',
      `sslmode=verify-ca&sslrootcert=${ca}`,
      `sslmode=verify-full&sslrootcert=${ca}`,
    ]) {
      expect([query, await encrypted(on(tlsOnly(), query))]).toEqual([query, true]);
    }
    // No sslmode at all is libpq's default, prefer.
    expect(await encrypted(`postgres://postgres@127.0.0.1:${tlsOnly().port}/postgres`)).toBe(true);
  });

  it('goes on without TLS on a server without it under disable, allow and prefer; require refuses with the fix', async () => {
    for (const mode of ['disable', 'allow', 'prefer']) {
      expect([mode, await encrypted(on(plain(), `sslmode=${mode}`))]).toEqual([mode, false]);
    }
    await expect(encrypted(on(plain(), 'sslmode=require'))).rejects.toThrow(
      /does not support SSL[\s\S]*turn ssl on[\s\S]*lower sslmode for primary/,
    );
  });

  it('refuses a certificate from another CA under verify-full (and under require with a root certificate), naming the node and the fix', async () => {
    const other = createTestAuthority(dir, 'other-ca');
    const wrong = encodeURIComponent(other.certFile);
    for (const mode of ['verify-full', 'verify-ca', 'require']) {
      await expect(
        encrypted(on(tlsOnly(), `sslmode=${mode}&sslrootcert=${wrong}`)),
      ).rejects.toMatchObject({
        node: 'primary',
        message: expect.stringMatching(
          /certificate[\s\S]*point sslrootcert at the CA that signed it/,
        ),
      });
    }
    await expect(encrypted(on(tlsOnly(), 'sslmode=disable'))).rejects.toThrow(
      /no encryption[\s\S]*accepts only TLS connections: set sslmode=require/,
    );
  });

  it('takes a keyword DSN with a quoted password, a password file, PGPASSWORD or ~/.pgpass', async () => {
    const ca = tlsOnly().tls?.caFile ?? '';
    const dsn = `host=127.0.0.1 port=${tlsOnly().port} dbname = postgres user=secret_user sslmode=verify-full sslrootcert='${ca}'`;
    const quoted = PASSWORD.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    expect(await encrypted(`${dsn} password='${quoted}'`)).toBe(true);

    const secret = path.join(dir, 'secret');
    writeFileSync(secret, `${PASSWORD}\n`);
    expect(await encrypted(dsn, { passwordFile: secret })).toBe(true);
    expect(await encrypted(dsn, { env: { PGPASSWORD: PASSWORD } })).toBe(true);

    const pgpass = path.join(dir, '.pgpass');
    const escaped = PASSWORD.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
    writeFileSync(pgpass, `127.0.0.1:${tlsOnly().port}:*:secret_user:${escaped}\n`, {
      mode: 0o600,
    });
    expect(await encrypted(dsn)).toBe(true);
    // libpq ignores a password file others may read: then there is no password.
    chmodSync(pgpass, 0o644);
    await expect(encrypted(dsn)).rejects.toThrow(
      /asks for a password and none is set[\s\S]*check the user and password of primary/,
    );
  });

  it('printed no driver warning', () => {
    expect(warnings).toEqual([]);
  });
});
