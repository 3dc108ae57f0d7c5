import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { loseMigrationOn, loseRoundOn } from '../support/lost-migration.js';
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

/** Stops `sidecar`, then copies replica1 anew: the fix its error names. */
async function resyncReplica1(sidecar: LockstepProcess): Promise<void> {
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
}

const versionOf = async (node: PostgresCluster) =>
  Number(
    (await node.query<{ version: string }>('SELECT version FROM lockstep.applied'))[0]?.version,
  );

async function status(): Promise<{ code: number | null; status: LockstepStatus }> {
  const run = await lockstep(['status', '--config', clusters.configFile, '--json']);
  return { code: run.code, status: JSON.parse(run.stdout) as LockstepStatus };
}

describe('a replica whose migration gid was rolled back by hand before phase two', () => {
  it('is reported by status, halted at its marker, until a resync gives it the migration', async () => {
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

      // The stream goes on for replica2; replica1 halts at the migration's marker, still reported.
      await clusters.primary.query(`UPDATE items SET v = 'after' WHERE id <= 50`);
      await waitForMarker(clusters.primary, [r2]);
      await eventually(
        async () => (await status()).status.replicas[0]?.state === 'halted',
        "replica1 to halt at the migration's marker",
      );
      const later = await status();
      expect(later.status.replicas[0]).toMatchObject({ ...lacking, state: 'halted' });
      expect(later.status.replicas[0]?.error).toMatch(/^\[replica1\][^\n]*001-notes/);
      expect(later.status.replicas[0]?.error).toContain('which this replica never committed');
      expect(later.status.replicas[0]?.error).toContain('lockstep attach --resync replica1');
      expect(later.code).toBe(1);
      const text = await lockstep(['status', '--config', clusters.configFile]);
      expect(text.stdout).toMatch(/migrations: \[replica1\].*001-notes.*attach --resync replica1/);

      await resyncReplica1(sidecar);
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

describe("a replica that did not commit a migration's round, meeting its marker", () => {
  it('halts before it, alone, named in status, until a resync gives it the change', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      // exec writes no history row: only the marker's check can tell replica1 lacks it.
      const exec = ['exec', '--config', clusters.configFile, '--sql'];
      const gid = await loseRoundOn([...exec, "UPDATE items SET v = 'by exec' WHERE id <= 10"], r1);
      await lockstep(['recover', '--config', clusters.configFile]);
      expect(await preparedGids([clusters.primary, r2])).toEqual([]);

      // The stream goes on for replica2; replica1 stops right before the marker.
      await clusters.primary.query(`UPDATE items SET v = 'past marker' WHERE id > 90`);
      await waitForMarker(clusters.primary, [r2]);
      const missing = { kind: 'migration-missing' };
      await eventually(
        async () =>
          sidecar.logEvent('replica-stopped', { replica: 'replica1', ...missing }) !== undefined,
        'replica1 to stop at the marker',
      );
      const stopped = sidecar.logEvent('replica-stopped', { replica: 'replica1', ...missing });
      expect(stopped).toMatchObject({
        migration: gid,
        state: 'halted',
        fix: expect.stringContaining('lockstep attach --resync replica1 --create-schema'),
      });
      expect(await versionOf(r1)).toBe(Number(stopped?.version) - 1);
      expect(await versionOf(r2)).toBeGreaterThan(Number(stopped?.version));
      expect(sidecar.events('replica-stopped', { replica: 'replica2', ...missing })).toEqual([]);
      expect(await r1.query("SELECT 1 FROM items WHERE v IN ('by exec', 'past marker')")).toEqual(
        [],
      );
      await expectIdentical(clusters.primary, [r2], ['items']);

      const seen = await status();
      expect(seen.status.replicas[0]).toMatchObject({ name: 'replica1', state: 'halted' });
      expect(seen.status.replicas[0]?.error).toContain(gid);
      expect(seen.status.replicas[0]?.error).toContain('attach --resync replica1');
      expect(seen.status.replicas[1]).toMatchObject({ name: 'replica2', error: null });

      await resyncReplica1(sidecar);
      // The marker now predates replica1's copy, which has the change: it is passed.
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['items']);
      expect((await status()).code).toBe(0);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  }, 180_000);
});
