import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { isMigrationGid } from '../../plugin/protocol/index.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE items (id int PRIMARY KEY, v text);
           CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`,
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrate-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each point of a migration round where `migrate` is SIGKILLed, and whether the migration must survive it. */
const FAULTS = [
  { point: 'after-prepare:1', survives: false }, // the primary prepared
  { point: 'after-prepare:2', survives: false }, // … and one replica
  { point: 'after-prepare:3', survives: false }, // every node prepared, nothing decided
  { point: 'after-decision', survives: true },
  { point: 'after-commit:1', survives: true }, // replica1 committed
  { point: 'after-commit:2', survives: true }, // both replicas committed, not the primary
] as const;

const hasColumn = async (node: PostgresCluster, column: string) =>
  (
    await node.query(
      `SELECT 1 FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = $1 AND NOT attisdropped`,
      [column],
    )
  ).length === 1;

describe('lockstep migrate killed inside its round', () => {
  it('leaves, after recovery, each migration on every node or on none, and no gid prepared', async () => {
    const nodes = [clusters.primary, ...clusters.replicas];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      for (const [i, fault] of FAULTS.entries()) {
        const column = `c${i}`;
        writeFileSync(
          path.join(dir, `${String(i).padStart(3, '0')}-${column}.sql`),
          `ALTER TABLE items ADD COLUMN ${column} int; UPDATE items SET ${column} = id * ${i + 1};`,
        );
        const killed = new LockstepProcess(
          ['migrate', 'up', '--config', clusters.configFile, '--dir', dir],
          { LOCKSTEP_FAULT: fault.point },
        );
        expect(await killed.exited, `${fault.point}: ${killed.output}`).toBeNull();
        expect(await preparedGids(nodes)).not.toEqual([]);

        const recovered = await lockstep(['recover', '--config', clusters.configFile]);
        expect(recovered.code, recovered.output).toBe(0);
        // recover resolves the migration's gids at once; the running sidecar keeps its own
        // rounds' gids, and finishes by itself a round that the migration's locks held up.
        const isMigration = (found: string) =>
          isMigrationGid(found.split(':')[1] as string, 'lockstep');
        expect((await preparedGids(nodes)).filter(isMigration)).toEqual([]);
        await eventually(
          async () => (await preparedGids(nodes)).length === 0,
          'no gid prepared on any node',
          15_000,
        );
        const present = await Promise.all(nodes.map((n) => hasColumn(n, column)));
        expect({ point: fault.point, present }).toEqual({
          point: fault.point,
          present: nodes.map(() => fault.survives),
        });
        const histories = await Promise.all(
          nodes.map(
            async (n) =>
              (await n.query('SELECT name FROM lockstep.migrations ORDER BY name')).length,
          ),
        );
        expect(new Set(histories).size).toBe(1);

        // Whatever recovery decided, the next migrate finishes the job.
        const again = await lockstep([
          'migrate',
          'up',
          '--config',
          clusters.configFile,
          '--dir',
          dir,
        ]);
        expect(again.code, again.output).toBe(0);
        for (const n of nodes) expect(await hasColumn(n, column)).toBe(true);
      }
      await clusters.primary.query(`UPDATE items SET v = 'after' WHERE id <= 10`);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['items']);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
