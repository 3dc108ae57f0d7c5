import { describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA =
  'CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE notes (id int PRIMARY KEY, v text);';
const clusters = useAttached({ replicas: 2, schema: SCHEMA });

const count = async (node: (typeof clusters.replicas)[number], table: string) =>
  Number((await node.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0]?.n);

describe('a conflicting row on one replica', () => {
  it('halts that replica with the table, version and fix while the other goes on; it resumes once the row is gone', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    await r1.query(`INSERT INTO items VALUES (7, 'written on the replica')`);
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query(
        `INSERT INTO items SELECT g, 'p' || g FROM generate_series(1, 10) g`,
      );
      await clusters.primary.query(`INSERT INTO notes VALUES (1, 'after the conflict')`);
      await eventually(
        async () => (await count(r2, 'notes')) === 1,
        'replica2 to apply past the conflict',
      );
      expect(await count(r1, 'notes')).toBe(0);

      const cfg = loadConfig(clusters.configFile);
      await eventually(
        async () => (await readStatus(postgresCluster(), cfg)).replicas[0]?.state === 'halted',
        'replica1 halted in status',
      );
      const status = await readStatus(postgresCluster(), cfg);
      expect(status.replicas[0]?.error).toMatch(
        /\[replica1, table public\.items\] applying version 1 failed: duplicate key/,
      );
      expect(status.replicas[0]?.error).toMatch(
        /fix: remove the conflicting row on replica "replica1"/,
      );
      expect(status.replicas[1]).toMatchObject({ name: 'replica2', error: null, lagVersions: 0 });
      const text = await lockstep(['status', '--config', clusters.configFile]);
      expect(text.output).toMatch(/replica1\s+halted/);

      await r1.query('DELETE FROM items WHERE id = 7');
      await eventually(async () => (await count(r1, 'notes')) === 1, 'replica1 to resume');
      await expectIdentical(clusters.primary, clusters.replicas, ['items', 'notes']);
      await eventually(
        async () => (await readStatus(postgresCluster(), cfg)).replicas[0]?.error === null,
        'the error to clear',
      );
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });

  it('with conflicts: "overwrite", makes the primary win instead of halting', async () => {
    const [r1] = clusters.replicas as [(typeof clusters.replicas)[number]];
    const overwrite = writeConfig(clusters.primary, clusters.replicas, { conflicts: 'overwrite' });
    await r1.query(`INSERT INTO items VALUES (100, 'replica only')`);
    await r1.query('DELETE FROM notes WHERE id = 1');
    const sidecar = new LockstepProcess(['run', '--config', overwrite.file]);
    try {
      await clusters.primary.query(`INSERT INTO items VALUES (100, 'primary wins')`);
      await clusters.primary.query(`UPDATE notes SET v = 'gone on replica1' WHERE id = 1`);
      await clusters.primary.query(`INSERT INTO notes VALUES (2, 'marker')`);
      await eventually(
        async () =>
          (await count(r1, 'notes')) === 1 &&
          (await r1.query('SELECT 1 FROM notes WHERE id = 2')).length === 1,
        'replica1 to pass the conflicts',
      );
      expect(await r1.query('SELECT v FROM items WHERE id = 100')).toEqual([{ v: 'primary wins' }]);
      // The update of the row missing there was skipped, and counted in the log.
      await eventually(
        async () => sidecar.logLines().some((l) => l.replica === 'replica1' && l.ignored === 1),
        'the skipped update to be reported',
      );
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      overwrite.remove();
    }
  });

  it('halts a replica missing a column with the table, the column and the fix; resumes once it is added', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    await r1.query('ALTER TABLE notes DROP COLUMN v');
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await clusters.primary.query(`INSERT INTO notes VALUES (50, 'needs v')`);
      await eventually(
        async () => (await r2.query('SELECT 1 FROM notes WHERE id = 50')).length === 1,
        'replica2 to apply',
      );
      await eventually(
        async () =>
          sidecar
            .logLines()
            .some(
              (l) =>
                l.replica === 'replica1' &&
                /\[replica1, table public\.notes\].*column "v"/.test(String(l.err)),
            ),
        'replica1 halted naming the column',
      );
      await r1.query('ALTER TABLE notes ADD COLUMN v text');
      await eventually(
        async () => (await r1.query('SELECT v FROM notes WHERE id = 50')).length === 1,
        'replica1 to resume',
      );
      // (replica1 lacks row 1 on purpose: the overwrite test removed it there.)
      expect(await r1.query('SELECT id, v FROM notes WHERE id = 50')).toEqual([
        { id: 50, v: 'needs v' },
      ]);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
