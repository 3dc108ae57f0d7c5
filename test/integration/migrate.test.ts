import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `${TPCB_SCHEMA} CREATE TABLE tags (id int PRIMARY KEY, label text);`,
  seed: `${tpcbSeed(1, 2_000)} INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 20) g;`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const columns = async (node: PostgresCluster, table: string) =>
  (
    await node.query<{ c: string }>(
      `SELECT attname || ':' || format_type(atttypid, atttypmod) AS c FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [table],
    )
  ).map((r) => r.c);
const indexes = async (node: PostgresCluster, table: string) =>
  (
    await node.query<{ i: string }>(
      'SELECT indexname AS i FROM pg_indexes WHERE tablename = $1 ORDER BY 1',
      [table],
    )
  ).map((r) => r.i);
const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations ORDER BY name')).map(
    (r) => r.name,
  );
const allNodes = () => [clusters.primary, ...clusters.replicas];
const migrate = (...args: string[]) =>
  lockstep(['migrate', ...args, '--config', clusters.configFile, '--dir', dir], {}, 120_000);

describe('lockstep migrate', () => {
  let sidecar: LockstepProcess;

  it('applies ADD COLUMN plus a backfill on every node while a TPC-B workload writes, which never fails', async () => {
    sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_LOG_LEVEL: 'debug',
    });
    writeFileSync(
      path.join(dir, '001-account-tier.sql'),
      `ALTER TABLE accounts ADD COLUMN tier int;
       UPDATE accounts SET tier = aid % 3;
       -- lockstep:down
       ALTER TABLE accounts DROP COLUMN tier;`,
    );
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const result = await migrate('up');
    await new Promise((r) => setTimeout(r, 1_500));
    const counts = await workload.stop();
    expect(result.output).toMatch(/001-account-tier: applied on replica1, replica2, primary/);
    expect(result.code).toBe(0);
    expect(counts.failures).toBe(0);
    expect(counts.transactions).toBeGreaterThan(0);
    await waitForMarker(clusters.primary, clusters.replicas);
    for (const node of allNodes()) {
      expect(await columns(node, 'accounts')).toContain('tier:integer');
      expect(await history(node)).toEqual(['001-account-tier']);
    }
    await expectIdentical(clusters.primary, clusters.replicas, [
      'accounts',
      'branches',
      'tellers',
      'history',
    ]);
    expect(await preparedGids(allNodes())).toEqual([]);
  });

  it('is refused by a replica that cannot apply it: no node changes, the output names the replica and the error; it succeeds once fixed', async () => {
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    writeFileSync(
      path.join(dir, '002-unique-labels.sql'),
      'CREATE UNIQUE INDEX tags_label ON tags (label);',
    );
    await r2.query(`INSERT INTO tags VALUES (1000, 'tag1')`); // a duplicate only replica2 has
    const refused = await migrate('up');
    // A rare stall seen under the full suite's load: the sidecar's last words go with the failure.
    expect(
      /could not create unique index/.test(refused.output)
        ? ''
        : `${refused.output}\n${sidecar.output.slice(-8000)}`,
    ).toBe('');
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/002-unique-labels: refused — nothing changed on any node/);
    expect(refused.output).toMatch(
      /replica2\s+no\s+\[replica2\] could not create unique index "tags_label"/,
    );
    for (const node of allNodes()) {
      expect(await indexes(node, 'tags')).toEqual(['tags_pkey']);
      expect(await history(node)).toEqual(['001-account-tier']);
    }
    expect(await preparedGids(allNodes())).toEqual([]);

    const dry = await migrate('up', '--dry-run');
    expect(dry.output).toMatch(/002-unique-labels: dry run — refused/);

    await r2.query('DELETE FROM tags WHERE id = 1000');
    const dryOk = await migrate('up', '--dry-run');
    expect(dryOk.output).toMatch(/002-unique-labels: dry run — every node can apply it/);
    expect(await indexes(r2, 'tags')).toEqual(['tags_pkey']);
    const applied = await migrate('up');
    expect(applied.code).toBe(0);
    for (const node of allNodes())
      expect(await indexes(node, 'tags')).toEqual(['tags_label', 'tags_pkey']);
  });

  it('runs Kysely modules, creates replicated tables that stream at once, and goes down again; status compares every node', async () => {
    writeFileSync(
      path.join(dir, '003-notes.mjs'),
      `export async function up(db) {
         await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey())
           .addColumn('body', 'text').execute();
         await db.insertInto('notes').values({ id: 1, body: 'from the migration' }).execute();
       }
       export async function down(db) { await db.schema.dropTable('notes').execute(); }`,
    );
    const up = await migrate('up');
    expect(up.output).toMatch(/003-notes: applied/);
    await clusters.primary.query(`INSERT INTO notes VALUES (2, 'streamed')`);
    await eventually(async () => {
      for (const r of clusters.replicas)
        if ((await r.query('SELECT 1 FROM notes WHERE id = 2')).length === 0) return false;
      return true;
    }, 'rows of the new table to stream');
    await expectIdentical(clusters.primary, clusters.replicas, ['notes', 'tags']);
    const status = await migrate('status');
    expect(status.code).toBe(0);
    expect(status.output).toMatch(/replica2: 3 applied \(last 003-notes\), 0 pending/);

    const down = await migrate('down');
    expect(down.output).toMatch(/003-notes: undone on replica1, replica2, primary/);
    for (const node of allNodes()) {
      expect(await node.query(`SELECT to_regclass('notes') AS t`)).toEqual([{ t: null }]);
      expect(await history(node)).toEqual(['001-account-tier', '002-unique-labels']);
    }
    const pending = await migrate('status');
    expect(pending.output).toMatch(
      /primary: 2 applied \(last 002-unique-labels\), 1 pending: 003-notes/,
    );
  });

  it('refuses a changed migration, a statement that cannot run in a transaction, and runs exec', async () => {
    writeFileSync(
      path.join(dir, '001-account-tier.sql'),
      'ALTER TABLE accounts ADD COLUMN tier bigint;',
    );
    const changed = await migrate('up');
    expect(changed.code).toBe(1);
    expect(changed.output).toMatch(/001-account-tier was changed after it was applied/);
    rmSync(path.join(dir, '001-account-tier.sql'));
    rmSync(path.join(dir, '003-notes.mjs'));
    writeFileSync(
      path.join(dir, '004-concurrently.sql'),
      'CREATE INDEX CONCURRENTLY tags_id2 ON tags (id);',
    );
    const unsafe = await migrate('up');
    expect(unsafe.code).toBe(1);
    expect(unsafe.output).toMatch(
      /"CREATE INDEX CONCURRENTLY tags_id2 ON tags \(id\)" cannot run in a two-phase migration[\s\S]*fix: drop CONCURRENTLY/,
    );
    rmSync(path.join(dir, '004-concurrently.sql'));

    const exec = await lockstep([
      'exec',
      '--config',
      clusters.configFile,
      '--sql',
      `UPDATE tags SET label = upper(label) WHERE id <= 3`,
    ]);
    expect(exec.output).toMatch(/executed on replica1, replica2, primary/);
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['tags']);
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  });
});
