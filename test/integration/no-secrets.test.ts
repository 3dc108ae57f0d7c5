import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const PASSWORD = 'S3cr3t-p4ss-Zq9';
const clusters = useClusters({ replicas: 2 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A configuration whose every URL carries the password (and one replica URL pointing nowhere). */
function config(name: string, replicaUrls: string[], extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, `${name}.json`);
  const url = (c: PostgresCluster) => c.urlFor({ user: 'app_owner', password: PASSWORD });
  writeFileSync(
    file,
    JSON.stringify({
      primary: url(clusters.primary),
      replicas: replicaUrls.map((u, i) => ({ name: `r${i + 1}`, url: u })),
      http: { port: 0 },
      retry: { initialMs: 100, maxMs: 500 },
      ...extra,
    }),
  );
  return file;
}

describe('credentials', () => {
  it('never appear in any output, log line or error message', async () => {
    const all = [clusters.primary, ...clusters.replicas];
    for (const c of all) {
      await c.query(
        `CREATE ROLE app_owner LOGIN SUPERUSER REPLICATION PASSWORD '${PASSWORD}';
         CREATE TABLE items (id int PRIMARY KEY, v text);`,
      );
    }
    const url = (c: PostgresCluster) => c.urlFor({ user: 'app_owner', password: PASSWORD });
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const outputs: string[] = [];
    const run = async (args: string[]) => {
      const result = await lockstep(args);
      outputs.push(result.output);
      return result;
    };

    // A configuration mistake, an unreachable replica, then the real thing.
    const badKey = await run(['doctor', '--config', config('bad-key', [url(r1)], { nope: 1 })]);
    expect(badKey.output).toMatch(/nope/);
    const unreachable = await run([
      'doctor',
      '--config',
      config('unreachable', [url(r1), `postgres://app_owner:${PASSWORD}@127.0.0.1:1/postgres`]),
    ]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.output).toMatch(/r2.*cannot connect/);
    const good = config('good', [url(r1), url(r2)]);
    expect((await run(['attach', '--config', good])).code).toBe(0);

    const sidecar = new LockstepProcess(['run', '--config', good], { LOCKSTEP_LOG_LEVEL: 'debug' });
    try {
      await clusters.primary.query(`INSERT INTO items VALUES (1, 'x')`);
      await eventually(
        async () => (await r2.query('SELECT 1 FROM items')).length === 1,
        'replication',
      );
      await r2.stopServer('immediate');
      await clusters.primary.query(`INSERT INTO items VALUES (2, 'y')`);
      await eventually(
        async () =>
          sidecar.logEvent('replica-stopped', { replica: 'r2', err: /unreachable/ }) !== undefined,
        'the unreachable replica in the log',
      );
      await run(['status', '--config', good]);
      await run(['status', '--config', good, '--json']);
      expect((await run(['pause', '--config', good])).code).toBe(0);
      expect((await run(['resume', '--config', good])).code).toBe(0);
      await r2.startServer();
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.closed;
      outputs.push(sidecar.output);
    }
    const everything = outputs.join('\n');
    expect(everything).toMatch(/unreachable/);
    expect(everything).not.toContain(PASSWORD);
  });

  it('never appear either when they come from a keyword DSN, a passwordFile, PGPASSWORD or ~/.pgpass', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const passwordFile = path.join(dir, 'secret');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const pgpass = path.join(dir, 'pgpass');
    writeFileSync(pgpass, `*:*:*:app_owner:${PASSWORD}\n`, { mode: 0o600 });
    const dsn = (port: number) =>
      `host=127.0.0.1 port=${port} dbname=postgres user=app_owner password='${PASSWORD}'`;
    const silent = (port: number) => `postgres://app_owner@127.0.0.1:${port}/postgres`;
    const write = (name: string, replicas: unknown[]) => {
      const file = path.join(dir, `${name}.json`);
      writeFileSync(
        file,
        JSON.stringify({ primary: dsn(clusters.primary.port), replicas, http: { port: 0 } }),
      );
      return file;
    };
    const outputs: string[] = [];
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const result = await lockstep(args, env);
      outputs.push(result.output);
      return result;
    };

    // A keyword DSN lockstep refuses is shown in the error, its password not.
    const refused = await run([
      'doctor',
      '--config',
      write('bad-dsn', [{ name: 'r1', url: `${dsn(r1.port)} ssl=1` }]),
    ]);
    expect(refused.output).toMatch(/password=\*\*\*.*unknown connection parameter "ssl"/);
    expect(refused.code).not.toBe(0);

    // Each replica's password from another source; status reads every node with them.
    const sources = write('sources', [
      { name: 'r1', url: silent(r1.port), passwordFile },
      { name: 'r2', url: silent(r2.port) },
    ]);
    const status = await run(['status', '--config', sources, '--json'], { PGPASSWORD: PASSWORD });
    // Every node reached with those passwords (exit 3 would say one was not; a replica the
    // earlier sidecar left halted may make it 1).
    expect(status.code, status.output).not.toBe(3);
    expect(JSON.parse(status.output).replicas).toMatchObject([
      { name: 'r1', reachable: true },
      { name: 'r2', reachable: true },
    ]);

    // An unreachable node whose password came from ~/.pgpass (PGPASSFILE), and one from a passwordFile.
    const unreachable = await run(
      [
        'doctor',
        '--config',
        write('unreachable', [
          { name: 'r1', url: silent(1), passwordFile },
          { name: 'r2', url: silent(1) },
        ]),
      ],
      { PGPASSFILE: pgpass },
    );
    expect(unreachable.output).toMatch(
      /r1.*cannot connect[\s\S]*r2.*cannot connect|r2.*cannot connect[\s\S]*r1.*cannot connect/,
    );
    expect(unreachable.code).toBe(3);

    const everything = outputs.join('\n');
    expect(everything).toMatch(/password=\*\*\*/);
    expect(everything).not.toContain(PASSWORD);
  });
});
