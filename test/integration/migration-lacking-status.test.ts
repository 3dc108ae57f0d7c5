import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { expectIdentical, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { loseMigrationOn } from '../support/lost-migration.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE items (id int PRIMARY KEY, v text);
           CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`,
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migration-lacking-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations ORDER BY name')).map(
    (r) => r.name,
  );

async function status(): Promise<{ code: number | null; status: LockstepStatus }> {
  const run = await lockstep(['status', '--config', clusters.configFile, '--json']);
  return { code: run.code, status: JSON.parse(run.stdout) as LockstepStatus };
}

describe('a replica whose migration gid was rolled back by hand before phase two', () => {
  it('is reported by status until a resync gives it the migration, whatever is applied meanwhile', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await loseMigrationOn(clusters.configFile, dir, r1);
      // Recovery commits the decided migration where its gid is still prepared.
      const recovered = await lockstep(['recover', '--config', clusters.configFile]);
      expect(await preparedGids([clusters.primary, r2])).toEqual([]);
      expect(await history(clusters.primary)).toEqual(['001-notes']);
      expect(await history(r1), recovered.output).toEqual([]);

      const lacking = {
        name: 'replica1',
        migrationsDiffer: true,
        missingMigrations: ['001-notes'],
      };
      const first = await status();
      expect(first.status.replicas[0]).toMatchObject(lacking);
      expect(first.status.replicas[1]).toMatchObject({ name: 'replica2', migrationsDiffer: false });
      expect(first.code).toBe(1);

      // More of the stream applied on replica1: it is still reported, by its state.
      await clusters.primary.query(`UPDATE items SET v = 'after' WHERE id <= 50`);
      await waitForMarker(clusters.primary, clusters.replicas);
      const later = await status();
      expect(later.status.replicas[0]).toMatchObject({ ...lacking, state: 'streaming' });
      expect(later.status.replicas[0]?.error).toMatch(/^\[replica1\][^\n]*001-notes/);
      expect(later.status.replicas[0]?.error).toContain('lockstep attach --resync replica1');
      expect(later.code).toBe(1);
      const text = await lockstep(['status', '--config', clusters.configFile]);
      expect(text.stdout).toMatch(/migrations: \[replica1\].*001-notes.*attach --resync replica1/);

      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      const resync = await lockstep([
        'attach',
        '--config',
        clusters.configFile,
        '--resync',
        'replica1',
        '--create-schema',
      ]);
      expect(resync.code, resync.output).toBe(0);
      expect(await history(r1)).toEqual(['001-notes']);
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await waitForMarker(clusters.primary, clusters.replicas);
      const after = await status();
      expect(after.status.replicas[0]).toMatchObject({
        name: 'replica1',
        migrationsDiffer: false,
        missingMigrations: [],
      });
      expect(after.code, JSON.stringify(after.status.replicas)).toBe(0);
      await expectIdentical(clusters.primary, clusters.replicas, ['items', 'notes']);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  }, 180_000);
});
