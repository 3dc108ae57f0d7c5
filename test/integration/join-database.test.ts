import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { attach } from '../../plugin/attach/attach.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  rewriteConfig,
  writeConfig,
} from '../support/lockstep-process.js';
import { otherDatabase } from '../support/other-database.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = ['items', 'marker'];
const quiet = { table: () => undefined, step: () => undefined };

const clusters = useClusters({ replicas: 2 });
let sidecarConfig: ReturnType<typeof writeConfig>;
let sidecar: LockstepProcess;

beforeAll(async () => {
  const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
  await Promise.all([clusters.primary, r1, r2].map((c) => c.query(SCHEMA)));
  await clusters.primary.query(
    `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 500) g`,
  );
  sidecarConfig = writeConfig(clusters.primary, [r1]);
  expect((await lockstep(['attach', '--config', sidecarConfig.file])).code).toBe(0);
  // The sidecar names replica2 with its first database.
  rewriteConfig(sidecarConfig.file, clusters.primary, [r1, r2]);
  sidecar = new LockstepProcess(['run', '--config', sidecarConfig.file]);
  await waitForMarker(clusters.primary, [r1]);
});

afterAll(async () => {
  sidecar?.kill('SIGTERM');
  await sidecar?.exited;
  sidecarConfig?.remove();
});

describe('a replica name whose URL reaches another database than the running sidecar’s', () => {
  it('is refused by attach, nothing copied; once the sidecar is given that URL it joins', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const elsewhere = await otherDatabase(r2, 'elsewhere');
    await elsewhere.query(SCHEMA);
    const attachConfig = writeConfig(clusters.primary, [r1, elsewhere]);
    try {
      await eventually(
        async () =>
          (
            await clusters.primary.query(
              `SELECT 1 FROM lockstep.replica_status WHERE replica = $1 AND database_id IS NOT NULL`,
              [r2.name],
            )
          ).length === 1,
        'the sidecar to report replica2',
      );
      const refused = await attach(postgresCluster(), loadConfig(attachConfig.file), quiet).then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(LockstepError);
      expect({
        node: (refused as LockstepError).node,
        setting: (refused as LockstepError).setting,
      }).toEqual({ node: r2.name, setting: 'url' });
      expect(await elsewhere.query('SELECT 1 FROM lockstep.applied')).toEqual([]);
      expect(await elsewhere.query('SELECT 1 FROM items LIMIT 1')).toEqual([]);

      // The sidecar reloads the new URL: replica2 is replaced, and attach joins it there.
      rewriteConfig(sidecarConfig.file, clusters.primary, [r1, elsewhere]);
      await eventually(
        async () => sidecar.logLines().some((l) => l.event === 'replica-replaced'),
        'the sidecar to replace replica2',
      );
      const joined = await lockstep(['attach', '--config', attachConfig.file]);
      expect(joined.code).toBe(0);
      await waitForMarker(clusters.primary, [r1, elsewhere]);
      await expectIdentical(clusters.primary, [r1, elsewhere], TABLES);
    } finally {
      attachConfig.remove();
    }
  });
});
