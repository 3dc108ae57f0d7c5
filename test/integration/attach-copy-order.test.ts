import { describe, expect, it } from 'vitest';
import { expectIdentical } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { twoReplicas, useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

/**
 * Created smallest first, so catalog order (by OID or by name) is the
 * opposite of size order. `docs` holds compressible values (compressed
 * inline or out of line); `pinned` names its compression method.
 */
const SCHEMA = `
  CREATE TABLE a_small (id int PRIMARY KEY, filler text NOT NULL);
  CREATE TABLE b_mid (id int PRIMARY KEY, filler text NOT NULL);
  CREATE TABLE c_big (id int PRIMARY KEY, filler text NOT NULL);
  CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL);
  CREATE TABLE pinned (id int PRIMARY KEY, body text COMPRESSION pglz NOT NULL);
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

const FILL = `
  INSERT INTO a_small SELECT g, repeat('a', 100) FROM generate_series(1, 10) g;
  INSERT INTO b_mid SELECT g, repeat('b', 100) FROM generate_series(1, 5000) g;
  INSERT INTO c_big SELECT g, repeat('c', 100) FROM generate_series(1, 50000) g;
  INSERT INTO docs SELECT g, repeat('doc ' || g, 20000) FROM generate_series(1, 20) g;
  INSERT INTO pinned SELECT g, repeat('pin ' || g, 20000) FROM generate_series(1, 20) g;`;

/** The compression methods of a table's values on `node` (compressed values only). */
async function methods(node: (typeof clusters.replicas)[number], table: string) {
  const rows = await node.query<{ method: string }>(
    `SELECT DISTINCT pg_column_compression(body) AS method FROM ${table}
      WHERE pg_column_compression(body) IS NOT NULL ORDER BY 1`,
  );
  return rows.map((r) => r.method);
}

describe('attach copies the largest tables first and loads TOAST values with lz4', () => {
  it('orders the copies by size and keeps a compression the operator chose', async () => {
    const { primary } = clusters;
    const [r1, r2] = twoReplicas(clusters.replicas);
    for (const node of [primary, r1, r2]) await node.query(SCHEMA);
    await primary.query(FILL);
    await primary.query('ANALYZE');
    // replica2's database names its default: the load must keep it.
    const [{ db } = { db: '' }] = await r2.query<{ db: string }>('SELECT current_database() AS db');
    await r2.query(`ALTER DATABASE "${db}" SET default_toast_compression = 'pglz'`);
    const [{ lz4 } = { lz4: false }] = await r1.query<{ lz4: boolean }>(
      `SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'`,
    );
    const config = writeConfig(primary, clusters.replicas);
    try {
      const attached = await lockstep([
        'attach',
        '--config',
        config.file,
        '--copy-concurrency',
        '1',
      ]);
      expect(attached.code, attached.output).toBe(0);
      // One copy at a time: each load's transaction starts after the one before ended.
      for (const node of [r1, r2]) {
        const order = await node.query<{ table_name: string }>(
          `SELECT table_name FROM lockstep.synced_tables
            WHERE table_name IN ('a_small', 'b_mid', 'c_big') ORDER BY copied_at`,
        );
        expect(order.map((r) => r.table_name)).toEqual(['c_big', 'b_mid', 'a_small']);
      }
      expect(await methods(r1, 'docs')).toEqual([lz4 ? 'lz4' : 'pglz']);
      expect(await methods(r2, 'docs')).toEqual(['pglz']);
      expect(await methods(r1, 'pinned')).toEqual(['pglz']);
      await expectIdentical(primary, [r1, r2], ['a_small', 'b_mid', 'c_big', 'docs', 'pinned']);
    } finally {
      config.remove();
    }
  });
});
