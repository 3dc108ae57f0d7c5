import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { createTestAuthority } from '../../adapters/local-postgres/cluster-tls.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

/**
 * Every node TLS-only (its own CA, `hostnossl … reject`): attach, run (the
 * replication connection included), status and migrate, once with
 * `sslmode=require` URLs and once with keyword DSNs, `verify-full` against
 * each node's CA and the password of a scram role in a passwordFile.
 */
const PASSWORD = "pa ss'wo\\rd";
const HBA = ['hostssl all lockstep_pw 127.0.0.1/32 scram-sha-256'];
const clusters = useClusters({
  replicas: 2,
  primary: { tls: { hba: HBA } },
  replica: { tls: { hba: HBA } },
});
const all = () => [clusters.primary, ...clusters.replicas];
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-tls-'));
const passwordFile = path.join(dir, 'password');
const outputs: string[] = [];

/** Runs statements in a database of a cluster (the harness connects with verify-full). */
async function inDatabase<R extends pg.QueryResultRow>(
  cluster: PostgresCluster,
  database: string,
  sql: string,
): Promise<R[]> {
  const client = new pg.Client({ connectionString: cluster.urlFor({ database }) });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  for (const node of all()) {
    await node.query(
      `CREATE ROLE lockstep_pw LOGIN SUPERUSER REPLICATION PASSWORD '${PASSWORD.replace(/'/g, "''")}'`,
    );
    for (const db of ['via_require', 'via_verify_full']) {
      await node.query(`CREATE DATABASE ${db}`);
      await inDatabase(node, db, 'CREATE TABLE items (id int PRIMARY KEY, v text)');
    }
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = async (...args: string[]) => {
  const result = await lockstep(args, {}, 120_000);
  outputs.push(result.output);
  return result;
};

function writeConfig(name: string, nodes: { primary: unknown; replicas: unknown[] }): string {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      ...nodes,
      slot: `lockstep_${name}`,
      publication: `lockstep_${name}`,
      http: { port: 0 },
      retry: { initialMs: 200, maxMs: 2000 },
    }),
  );
  return file;
}

/** attach, run with a write replicated to both replicas, status, migrate: all over TLS. */
async function attachRunStatusMigrate(config: string, db: string): Promise<void> {
  const attached = await run('attach', '--config', config);
  expect(attached.output).toMatch(/attached:/);
  expect(attached.code).toBe(0);
  const sidecar = new LockstepProcess(['run', '--config', config]);
  try {
    await inDatabase(clusters.primary, db, `INSERT INTO items VALUES (1, 'over TLS')`);
    await eventually(async () => {
      for (const replica of clusters.replicas) {
        const rows = await inDatabase<{ v: string }>(replica, db, 'SELECT v FROM items');
        if (rows[0]?.v !== 'over TLS') return false;
      }
      return true;
    }, `the write on both replicas (${db})`);

    const status = await run('status', '--config', config, '--json');
    expect(status.code).toBe(0);
    const report = JSON.parse(status.output) as { replicas: { name: string; error: unknown }[] };
    expect(report.replicas).toMatchObject([
      { name: 'r1', error: null },
      { name: 'r2', error: null },
    ]);

    const migrations = mkdtempSync(path.join(dir, 'migrations-'));
    writeFileSync(
      path.join(migrations, '001-add-note.sql'),
      'ALTER TABLE items ADD COLUMN note text;\n-- lockstep:down\nALTER TABLE items DROP COLUMN note;\n',
    );
    const migrated = await run('migrate', 'up', '--config', config, '--dir', migrations);
    expect(migrated.output).toMatch(/001-add-note: applied on r1, r2, primary/);
    expect(migrated.code).toBe(0);
    for (const node of all()) {
      const columns = await inDatabase<{ c: string }>(
        node,
        db,
        `SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position`,
      );
      expect(columns.map((c) => c.c)).toEqual(['id', 'v', 'note']);
    }
  } finally {
    sidecar.kill('SIGTERM');
    const code = await sidecar.closed;
    outputs.push(sidecar.output);
    expect(code).toBe(0);
  }
}

describe('TLS-only nodes', () => {
  it('work with sslmode=require URLs (encrypted, certificate not checked)', async () => {
    const url = (c: PostgresCluster) =>
      `postgres://postgres@127.0.0.1:${c.port}/via_require?sslmode=require`;
    const config = writeConfig('via_require', {
      primary: url(clusters.primary),
      replicas: clusters.replicas.map((c, i) => ({ name: `r${i + 1}`, url: url(c) })),
    });
    await attachRunStatusMigrate(config, 'via_require');
  });

  it('work with keyword DSNs, verify-full against each node CA and a password file', async () => {
    const dsn = (c: PostgresCluster) =>
      `host=127.0.0.1 port=${c.port} dbname=via_verify_full user=lockstep_pw sslmode=verify-full sslrootcert='${c.tls?.caFile}'`;
    const config = writeConfig('via_verify_full', {
      primary: { url: dsn(clusters.primary), passwordFile },
      replicas: clusters.replicas.map((c, i) => ({ name: `r${i + 1}`, url: dsn(c), passwordFile })),
    });
    await attachRunStatusMigrate(config, 'via_verify_full');
  });

  it('refuse verify-full against the wrong CA, naming the node and the fix', async () => {
    const wrong = createTestAuthority(dir, 'wrong-ca').certFile;
    const url = (c: PostgresCluster, ca: string) =>
      `postgres://postgres@127.0.0.1:${c.port}/via_require?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const config = writeConfig('wrong_ca', {
      primary: url(clusters.primary, clusters.primary.tls?.caFile ?? ''),
      replicas: [
        { name: 'r1', url: url(r1, r1.tls?.caFile ?? '') },
        { name: 'r2', url: url(r2, wrong) },
      ],
    });
    const doctor = await run('doctor', '--config', config);
    expect(doctor.code).not.toBe(0);
    expect(doctor.output).toMatch(
      /r2[\s\S]*cannot connect[\s\S]*certificate[\s\S]*point sslrootcert at the CA that signed it/,
    );
  });

  it('printed no driver warning in any command', () => {
    expect(outputs.length).toBeGreaterThan(5);
    expect(outputs.join('\n')).not.toMatch(/SECURITY WARNING|DeprecationWarning|\(node:\d+\)/);
  });
});
