import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { withSidecar } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = `
  CREATE TABLE big (id int PRIMARY KEY, code int UNIQUE, t text, b bytea, note text);
  CREATE TABLE other (id int PRIMARY KEY, t text);
  CREATE TABLE full_id (id int, t text);
  ALTER TABLE full_id REPLICA IDENTITY FULL;
  CREATE TABLE edge (id int PRIMARY KEY, t text);
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

const MIB = 1024 * 1024;
/** Text of about `mb` MB, multi-byte characters included. */
const text = (mb: number, salt: string) =>
  `repeat('${salt}é€😀 x', ${Math.round((mb * MIB) / 13)})`;
const bytes = (mb: number) => `decode(repeat('00ff7f80', ${Math.round((mb * MIB) / 4)}), 'hex')`;

/** Every table's rows, large values by md5. */
async function digest(node: PostgresCluster): Promise<unknown[]> {
  return node.query(`
    SELECT 'big' AS tab, id, code, md5(t) AS t, md5(b) AS b, note FROM big
    UNION ALL SELECT 'other', id, NULL, md5(t), NULL, NULL FROM other
    UNION ALL SELECT 'full_id', id, NULL, md5(t), NULL, NULL FROM full_id
    UNION ALL SELECT 'edge', id, length(t), md5(t), NULL, NULL FROM edge
    ORDER BY 1, 2, 4`);
}

async function expectSame(primary: PostgresCluster, replicas: readonly PostgresCluster[]) {
  await waitForMarker(primary, replicas);
  const expected = await digest(primary);
  for (const replica of replicas) expect(await digest(replica)).toEqual(expected);
}

const clusters = useAttached({ replicas: 2, schema: SCHEMA });

describe('large rows mixed with small ones', () => {
  it('keeps every change, in effect and bytes, across large/small boundaries in one transaction', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary, replicas } = clusters;
      await primary.query(`INSERT INTO big VALUES
        (1, 1, 'one', '\\x01', 'a'), (2, 2, ${text(2, 'p')}, ${bytes(2)}, 'b'), (3, 3, 'three', NULL, 'c')`);
      await primary.query(`BEGIN;
        INSERT INTO big VALUES (10, 10, ${text(2, 'q')}, NULL, 'large insert');
        INSERT INTO big VALUES (11, 11, 'small insert', NULL, NULL);
        UPDATE big SET t = ${text(2, 'r')} WHERE id = 11;
        UPDATE big SET t = 'small again' WHERE id = 10;
        INSERT INTO other VALUES (1, ${text(1.5, 's')}), (2, 'small other');
        DELETE FROM big WHERE id = 1;
        INSERT INTO big VALUES (1, 1, ${text(3, 't')}, ${bytes(1)}, 'reinserted large');
        UPDATE big SET note = NULL, b = ${bytes(2)} WHERE id = 2;
        UPDATE big SET code = 30, t = ${text(2, 'u')} WHERE id = 3;
        INSERT INTO big VALUES (12, 3, 'takes code 3', NULL, NULL);
        DELETE FROM other WHERE id = 2;
        COMMIT`);
      await expectSame(primary, replicas);

      // Unique codes swapped through a large update then a small one: the set-based
      // apply may not reorder them into a collision that is not caught.
      await primary.query(`BEGIN;
        UPDATE big SET code = 99, t = ${text(2, 'v')} WHERE id = 2;
        UPDATE big SET code = 2 WHERE id = 12;
        COMMIT`);
      await expectSame(primary, replicas);

      // A key change next to large rows: the ordered path.
      await primary.query(`BEGIN;
        INSERT INTO big VALUES (40, 40, ${text(2, 'w')}, NULL, 'moves');
        UPDATE big SET id = 41 WHERE id = 40;
        UPDATE big SET id = 42, t = ${text(1.2, 'x')} WHERE id = 41;
        INSERT INTO big VALUES (43, 43, 'small', NULL, NULL);
        UPDATE big SET t = ${text(2, 'y')}, note = 'unchanged b' WHERE id = 1;
        DELETE FROM big WHERE id = 10;
        COMMIT`);
      await expectSame(primary, replicas);
    });
  });

  it('replicates large rows of a REPLICA IDENTITY FULL table, and rows at the 1 MiB threshold', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary, replicas } = clusters;
      await primary.query(`INSERT INTO full_id VALUES (1, ${text(2, 'a')}), (2, 'small')`);
      await primary.query(`UPDATE full_id SET t = ${text(2, 'b')} WHERE id = 2`);
      await primary.query(`UPDATE full_id SET t = 'small now' WHERE id = 1`);
      await expectSame(primary, replicas);
      await primary.query(`DELETE FROM full_id WHERE id = 2`);
      // TupleData of (id '1', t): 6 bytes for the id, 5 plus the text for t.
      const atThreshold = MIB - 11;
      await primary.query(`BEGIN;
        INSERT INTO edge VALUES (1, repeat('a', ${atThreshold - 1}));
        INSERT INTO edge VALUES (2, repeat('a', ${atThreshold}));
        INSERT INTO edge VALUES (3, repeat('a', ${atThreshold + 1}));
        INSERT INTO edge VALUES (4, repeat('a', ${atThreshold - 2}) || '€');
        INSERT INTO edge VALUES (5, repeat('é', ${Math.floor(atThreshold / 2)}));
        COMMIT`);
      await primary.query(`UPDATE edge SET t = t || 'z' WHERE id IN (1, 2)`);
      await expectSame(primary, replicas);
    });
  });

  it('halts a replica whose large row fails there like a small one, and re-applies it once fixed', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await r1.query(`ALTER TABLE other ADD CONSTRAINT not_bad CHECK (t NOT LIKE 'bad%')`);
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await primary.query(`BEGIN;
        INSERT INTO other VALUES (100, 'small before');
        INSERT INTO other VALUES (101, 'bad' || ${text(2, 'z')});
        INSERT INTO other VALUES (102, 'small after');
        COMMIT`);
      await waitForMarker(primary, [r2]);
      const cfg = loadConfig(clusters.configFile);
      await eventually(
        async () => (await readStatus(postgresCluster(), cfg)).replicas[0]?.state === 'halted',
        'replica1 halted',
      );
      const status = await readStatus(postgresCluster(), cfg);
      expect(status.replicas[0]?.error).toMatch(/\[replica1, table public\.other\].*not_bad/);
      expect(await r1.query('SELECT id FROM other WHERE id >= 100')).toEqual([]);
      await r1.query('ALTER TABLE other DROP CONSTRAINT not_bad');
      await expectSame(primary, clusters.replicas);
    });
  });
});
