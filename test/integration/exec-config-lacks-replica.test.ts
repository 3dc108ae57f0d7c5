import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { appliedVersion, waitForMarker } from '../support/compare-nodes.js';
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
  it('does not commit without that replica (it would only advance its version there)', async () => {
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
      await waitForMarker(primary, [r1, r2]);
      const streamVersion = await appliedVersion(r1);
      // Expected: refused (exit 1, nothing changed), or else every replica the stream serves has it.
      const outcome = {
        code: exec.code,
        primary: await values(primary),
        replica1: await values(r1),
        replica2: await values(r2),
        replica2AtStreamVersion: (await appliedVersion(r2)) === streamVersion,
      };
      expect(outcome.replica2, JSON.stringify(outcome)).toEqual(outcome.primary);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
      older.remove();
    }
  });
});
