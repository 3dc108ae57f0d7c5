import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import type { LockstepCluster } from '../../plugin/ports/lockstep-cluster.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE items (id int PRIMARY KEY, v text);
           CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`,
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migration-in-flight-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a migration that commits between status reading the primary and a replica', () => {
  it('flags no replica: they commit first, the primary last', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      writeFileSync(path.join(dir, '001-notes.sql'), 'CREATE TABLE notes (id int PRIMARY KEY);');
      const config = loadConfig(clusters.configFile);
      const real = postgresCluster();
      let migrated: Promise<void> | null = null;
      // The interleaving: status has read the primary; migrate up runs to the end; status reads the replicas.
      const cluster = new Proxy(real, {
        get(target, prop, receiver) {
          if (prop !== 'replica') return Reflect.get(target, prop, receiver);
          return async (...args: Parameters<LockstepCluster['replica']>) => {
            migrated ??= lockstep([
              'migrate',
              'up',
              '--config',
              clusters.configFile,
              '--dir',
              dir,
            ]).then((up) => {
              expect(up.code, up.output).toBe(0);
            });
            await migrated;
            return target.replica(...args);
          };
        },
      }) as LockstepCluster;
      const status = await readStatus(cluster, config);
      // Every node now has 001-notes, committed; nothing is in doubt.
      expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
      for (const node of [clusters.primary, ...clusters.replicas])
        expect(await node.query(`SELECT name FROM lockstep.migrations`)).toEqual([
          { name: '001-notes' },
        ]);
      expect(status.replicas.map((r) => [r.name, r.migrationsDiffer, r.error])).toEqual([
        ['replica1', false, null],
        ['replica2', false, null],
      ]);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  }, 120_000);
});
