import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleCli } from '../../scripts/bundle-cli.js';
import { eventually } from '../support/compare-nodes.js';
import { lockstep, useBuiltCli, withSidecar } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

// The bundle `npm run build` makes (package.json's bin), written below dist/ so that it
// finds package.json and node_modules as the real one does; every command here runs it.
mkdirSync('dist', { recursive: true });
const dir = mkdtempSync(path.join('dist', 'built-cli-test-'));
beforeAll(async () => {
  const file = path.join(dir, 'lockstep.mjs');
  await bundleCli(file);
  useBuiltCli(file);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const clusters = useAttached({ replicas: 1, schema: NUMBERED_SCHEMA });
const command = (args: string[]) => lockstep(args, {}, 120_000);

describe('the bundled CLI', () => {
  it('prints the version from package.json and the help', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const version = await command(['--version']);
    expect(version.stdout.trim()).toBe(pkg.version);
    expect(version.code).toBe(0);
    const help = await command(['--help']);
    for (const name of ['attach', 'run', 'status', 'migrate', 'agent'])
      expect(help.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(help.code).toBe(0);
  });

  it('attaches, streams, reports status and runs SQL and Kysely migrations', async () => {
    expect(clusters.attachOutput).toMatch(/attached:/);
    await withSidecar(clusters.configFile, async (sidecar) => {
      await eventually(async () => Boolean(sidecar.logged(/lockstep is running/)), 'the sidecar');
      await insertNumbered(clusters.primary, 1, 3);
      await eventually(async () => {
        const status = await command(['status', '--json', '--config', clusters.configFile]);
        const doc = JSON.parse(status.stdout) as { replicas: Array<{ version: number }> };
        return status.code === 0 && doc.replicas.every((r) => r.version === 3);
      }, 'status exit 0 with the replica at version 3');
      const migrations = mkdtempSync(path.join(dir, 'migrations-'));
      writeFileSync(path.join(migrations, '001-extra.sql'), 'CREATE TABLE extra (id int);\n');
      // A Kysely module uses the project's own kysely with the bundle's `db`.
      writeFileSync(
        path.join(migrations, '002-more.mjs'),
        "import { sql } from 'kysely';\n" +
          'export async function up(db) { await sql`CREATE TABLE more (id int)`.execute(db); }\n',
      );
      const up = await command([
        'migrate',
        'up',
        '--dir',
        migrations,
        '--config',
        clusters.configFile,
      ]);
      expect(up.output).not.toMatch(/Error/);
      expect(up.code).toBe(0);
    });
    for (const node of [clusters.primary, ...clusters.replicas])
      expect(
        await node.query(
          "SELECT to_regclass('public.extra') AS a, to_regclass('public.more') AS b",
        ),
      ).toEqual([{ a: 'extra', b: 'more' }]);
  });
});
