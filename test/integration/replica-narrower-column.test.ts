import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { rewriteConfig, withSidecar } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// Every statement below changes several rows in one transaction: the replica applies
// them set-based (one statement per table, values cast from text[]).
const SCHEMA = `
  CREATE TABLE item (id int PRIMARY KEY, name varchar(10), code char(6), price numeric(8,3));
  CREATE TABLE keyed (code varchar(10), kind char(4), note text, PRIMARY KEY (code, kind));
  CREATE TABLE tag (id int PRIMARY KEY, label varchar(10));
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const SEED = `
  INSERT INTO item SELECT g, 'n' || g, 'c' || g, g FROM generate_series(1, 4) g;
  INSERT INTO keyed SELECT 'k' || g, 'ab', 'before' FROM generate_series(1, 4) g;
  INSERT INTO tag SELECT g, 't' || g FROM generate_series(1, 2) g;`;
// Schema drift on replica1 only: its columns are narrower than the primary's.
const NARROWER = `
  ALTER TABLE item ALTER name TYPE varchar(5), ALTER code TYPE char(3), ALTER price TYPE numeric(8,1);
  ALTER TABLE keyed ALTER code TYPE varchar(5), ALTER kind TYPE char(3);
  ALTER TABLE tag ALTER label TYPE varchar(4);`;

const clusters = useAttached({ replicas: 2, schema: SCHEMA, seed: SEED });
const replica1 = () => clusters.replicas[0] as PostgresCluster;
const replica2 = () => clusters.replicas[1] as PostgresCluster;

async function replica1Status() {
  return (await readStatus(postgresCluster(), loadConfig(clusters.configFile))).replicas[0];
}

/**
 * Waits until replica2 has everything written so far and replica1 has either
 * halted or applied it too (the old, truncating behaviour).
 */
async function afterReplica1Settles(): Promise<void> {
  const { primary } = clusters;
  const [mark] = await primary.query<{ id: string }>(
    'INSERT INTO marker DEFAULT VALUES RETURNING id',
  );
  await waitForMarker(primary, [replica2()]);
  await eventually(
    async () =>
      (await replica1Status())?.state === 'halted' ||
      (await replica1().query('SELECT 1 FROM marker WHERE id = $1', [mark?.id])).length > 0,
    'replica1 halted or caught up',
  );
}

/**
 * After a change with values too long for replica1's column: replica1 still
 * holds `before` (read by `rows`), is halted on `table` with the Postgres
 * error and the fix, and once `widen` runs there catches up with the primary.
 */
async function expectHaltedUntilWidened(check: {
  table: string;
  rows: string;
  before: unknown[];
  problem: RegExp;
  widen: string;
}): Promise<void> {
  await afterReplica1Settles();
  expect(await replica1().query(check.rows)).toEqual(check.before);
  const status = await replica1Status();
  expect(status?.state).toBe('halted');
  expect(status?.error).toContain(`[replica1, table public.${check.table}]`);
  expect(status?.error).toMatch(check.problem);
  expect(status?.error).toMatch(
    /fix: a column on replica "replica1" is narrower than the primary's/,
  );
  await replica1().query(check.widen);
  await waitForMarker(clusters.primary, clusters.replicas);
  expect(await replica1().query(check.rows)).toEqual(await clusters.primary.query(check.rows));
}

describe('a replica column narrower than the primary', () => {
  it('halts a set-based UPDATE too long for varchar(n) instead of truncating, and catches up once widened', async () => {
    await replica1().query(NARROWER);
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await primary.query(`UPDATE item SET name = 'abcdefgh' WHERE id IN (1, 2, 3)`);
      await expectHaltedUntilWidened({
        table: 'item',
        rows: 'SELECT id, name FROM item ORDER BY id',
        before: [1, 2, 3, 4].map((id) => ({ id, name: `n${id}` })),
        problem: /value too long for type character varying\(5\) \[22001\]/,
        widen: 'ALTER TABLE item ALTER name TYPE varchar(10)',
      });
    });
  });

  it('halts a set-based UPDATE too long for char(n), and catches up once widened', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await primary.query(`UPDATE item SET code = 'abcdef' WHERE id IN (2, 4)`);
      await expectHaltedUntilWidened({
        table: 'item',
        rows: 'SELECT id, code FROM item ORDER BY id',
        before: [1, 2, 3, 4].map((id) => ({ id, code: `c${id} ` })),
        problem: /value too long for type character\(3\) \[22001\]/,
        widen: 'ALTER TABLE item ALTER code TYPE char(6)',
      });
    });
  });

  it('finds rows by narrower varchar(n) and char(n) keys in set-based UPDATE and DELETE', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await primary.query(
        `UPDATE keyed SET note = 'after ' || code WHERE code IN ('k1', 'k2', 'k3')`,
      );
      await primary.query(`DELETE FROM keyed WHERE code IN ('k3', 'k4')`);
      await waitForMarker(primary, clusters.replicas);
      // char(n) pads to its own width, so compare its text (trailing blanks dropped).
      const rows = 'SELECT code, kind::text AS kind, note FROM keyed ORDER BY 1';
      expect(await replica1().query(rows)).toEqual([
        { code: 'k1', kind: 'ab', note: 'after k1' },
        { code: 'k2', kind: 'ab', note: 'after k2' },
      ]);
      expect(await replica1().query(rows)).toEqual(await primary.query(rows));
    });
  });

  it('rounds numeric(p,s) as the replica column does', async () => {
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await primary.query('UPDATE item SET price = id + 0.251 WHERE id IN (1, 2, 3)');
      await waitForMarker(primary, clusters.replicas);
      expect(await replica1().query('SELECT id, price FROM item ORDER BY id')).toEqual(
        await primary.query('SELECT id, round(price, 1)::text AS price FROM item ORDER BY id'),
      );
      expect((await replica1Status())?.state).not.toBe('halted');
    });
  });

  it('halts a set-based INSERT (an upsert under conflicts: "overwrite") too long for varchar(n)', async () => {
    const { primary } = clusters;
    rewriteConfig(clusters.configFile, primary, clusters.replicas, { conflicts: 'overwrite' });
    await withSidecar(clusters.configFile, async () => {
      await primary.query(
        `INSERT INTO tag VALUES (10, 'long label'), (11, 'other one'), (12, 'ok')`,
      );
      await expectHaltedUntilWidened({
        table: 'tag',
        rows: 'SELECT id, label FROM tag ORDER BY id',
        before: [
          { id: 1, label: 't1' },
          { id: 2, label: 't2' },
        ],
        problem: /value too long for type character varying\(4\) \[22001\]/,
        widen: 'ALTER TABLE tag ALTER label TYPE varchar(10)',
      });
    });
  });
});
