import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { MigrationStatus } from '../../plugin/migrate/migration-status.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { lackingSinceOlderAttach } from '../support/older-attach.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE items (id int PRIMARY KEY, v text);
           CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`,
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migration-copied-before-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const migrateStatus = (...flags: string[]) =>
  lockstep(['migrate', 'status', '--config', clusters.configFile, '--dir', dir, ...flags]);

describe('a replica attached by a lockstep that did not copy the migration history', () => {
  it('is not reported for the migrations applied before its copy; one lacking after it is', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      writeFileSync(path.join(dir, '001-notes.sql'), 'CREATE TABLE notes (id int PRIMARY KEY);');
      writeFileSync(path.join(dir, '002-tags.sql'), 'CREATE TABLE tags (id int PRIMARY KEY);');
      const up = await lockstep(['migrate', 'up', '--config', clusters.configFile, '--dir', dir]);
      expect(up.code, up.output).toBe(0);

      // An older install: 001 ran before replica1's copy began, and that attach copied no history.
      await lackingSinceOlderAttach(clusters.primary, r1, '001-notes');
      // replica2 lacks 002, applied after its copy: a real divergence.
      await r2.query(`DELETE FROM lockstep.migrations WHERE name = '002-tags'`);

      const run = await lockstep(['status', '--config', clusters.configFile, '--json']);
      const status = JSON.parse(run.stdout) as LockstepStatus;
      expect(status.replicas[0]).toMatchObject({
        name: 'replica1',
        migrationsDiffer: false,
        missingMigrations: [],
        error: null,
      });
      expect(status.replicas[1]).toMatchObject({
        name: 'replica2',
        migrationsDiffer: true,
        missingMigrations: ['002-tags'],
      });
      expect(run.code).toBe(1);

      const migrate = await migrateStatus('--json');
      const nodes = (JSON.parse(migrate.stdout) as MigrationStatus).nodes;
      expect(nodes[1]).toMatchObject({
        name: 'replica1',
        differs: false,
        copiedBefore: ['001-notes'],
        pending: [],
      });
      expect(nodes[2]).toMatchObject({ name: 'replica2', differs: true, copiedBefore: [] });
      expect(migrate.code).toBe(1);

      // replica2 given its row back: both commands are clean, replica1 still lacking 001's row.
      const [row] = await clusters.primary.query<{ checksum: string; at: string }>(
        `SELECT checksum, applied_at::text AS at FROM lockstep.migrations WHERE name = '002-tags'`,
      );
      await r2.query(
        `INSERT INTO lockstep.migrations (name, checksum, applied_at, version)
         VALUES ('002-tags', '${row?.checksum}', '${row?.at}', 0)`,
      );
      const clean = await lockstep(['status', '--config', clusters.configFile, '--json']);
      expect(clean.code, clean.stdout).toBe(0);
      const again = await migrateStatus();
      expect(again.code, again.output).toBe(0);
      expect(again.stdout).toMatch(/replica1: 1 applied \(last 002-tags\), 1 copied before/);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  }, 120_000);
});
