import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { appliedVersion, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const clusters = useAttached({
  replicas: 2,
  schema: SCHEMA,
  seed: `INSERT INTO items SELECT g, 'old' FROM generate_series(1, 10) g`,
});

const values = async (node: PostgresCluster) =>
  (await node.query<{ v: string }>('SELECT DISTINCT v FROM items ORDER BY v')).map((r) => r.v);

describe('lockstep exec with a configuration lacking a replica the running sidecar serves', () => {
  it('is refused, naming the replica, and changes no node; with the sidecar’s file it runs everywhere', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    // E.g. replica2 was added to the sidecar's file and reloaded; the job running exec has the older file.
    const older = writeConfig(primary, [r1]);
    try {
      await waitForMarker(primary, [r1, r2]);
      const exec = await lockstep(
        ['exec', '--config', older.file, '--sql', "UPDATE items SET v = 'new'"],
        {},
        120_000,
      );
      expect(exec.code, exec.output).toBe(1);
      expect(exec.output).toMatch(/\[replica2\].*serves replica2/);
      expect(exec.output).toMatch(/configuration the sidecar reads/);
      await waitForMarker(primary, [r1, r2]);
      for (const node of [primary, r1, r2]) expect(await values(node)).toEqual(['old']);
      expect(await preparedGids([primary, r1, r2])).toEqual([]);
      expect(await appliedVersion(r2)).toBe(await appliedVersion(r1));

      const full = await lockstep(
        ['exec', '--config', clusters.configFile, '--sql', "UPDATE items SET v = 'new'"],
        {},
        120_000,
      );
      expect(full.code, full.output).toBe(0);
      for (const node of [primary, r1, r2]) expect(await values(node)).toEqual(['new']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
      older.remove();
    }
  });
});
