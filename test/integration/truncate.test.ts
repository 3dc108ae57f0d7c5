import { describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = `CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE TABLE parent (id int PRIMARY KEY);
  CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);`;
const SEED = `INSERT INTO parent SELECT generate_series(1, 10);
  INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;`;
const clusters = useAttached({
  replicas: 2,
  schema: SCHEMA,
  seed: SEED,
  config: { tables: ['public.*'] },
});

describe('TRUNCATE is applied like native apply: the tables of one TRUNCATE together, never CASCADE', () => {
  it('a replica-local table that references a truncated one halts that replica alone, naming it; its rows survive', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    // replica1 keeps a table of its own that references a replicated one.
    await r1.query(`CREATE TABLE local_audit (id int PRIMARY KEY, parent_id int REFERENCES parent);
                    INSERT INTO local_audit VALUES (1, 1)`);
    const cfg = loadConfig(clusters.configFile);
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await waitForMarker(clusters.primary, clusters.replicas);
      // The primary's CASCADE reaches child there: the stream lists both tables.
      await clusters.primary.query('TRUNCATE parent CASCADE');
      await waitForMarker(clusters.primary, [r2]);
      await expectIdentical(clusters.primary, [r2], ['parent', 'child']);
      await eventually(async () => {
        const replica = (await readStatus(postgresCluster(), cfg)).replicas.find(
          (r) => r.name === 'replica1',
        );
        return replica?.state === 'halted' && /local_audit/.test(replica.error ?? '');
      }, 'replica1 halted naming local_audit');
      expect(await r1.query('SELECT id FROM local_audit')).toEqual([{ id: 1 }]);

      // Fixed on the replica: it catches up by itself.
      await r1.query('ALTER TABLE local_audit DROP CONSTRAINT local_audit_parent_id_fkey');
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['parent', 'child']);
      expect(await r1.query('SELECT id FROM local_audit')).toEqual([{ id: 1 }]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
