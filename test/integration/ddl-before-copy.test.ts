import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

// A replica joining at a position before DDL its copy already reflects: that DDL is not
// run again (replayed, a drop and re-create would throw copied data away).
const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text, note text);
                CREATE TABLE events (id int PRIMARY KEY, what text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = ['items', 'events', 'marker'];
const EXTRA = { twoPhase: { captureDdl: true } };

const clusters = useClusters({ replicas: 2 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
const configs: Array<ReturnType<typeof writeConfig>> = [];

beforeAll(async () => {
  await Promise.all([clusters.primary, replica(0)].map((c) => c.query(SCHEMA)));
  await clusters.primary.query(
    `INSERT INTO items SELECT g, md5(g::text), 'orig' FROM generate_series(1, 200) g;
     INSERT INTO events SELECT g, 'old' FROM generate_series(1, 50) g`,
  );
  const first = writeConfig(clusters.primary, [replica(0)], EXTRA);
  configs.push(first);
  expect((await lockstep(['attach', '--config', first.file])).code).toBe(0);
  const sidecar = new LockstepProcess(['run', '--config', first.file]);
  try {
    await waitForMarker(clusters.primary, [replica(0)]);
  } finally {
    sidecar.kill('SIGTERM');
    await sidecar.exited;
  }
});

afterAll(() => {
  for (const config of configs) config.remove();
});

describe('captured DDL committed before a joining replica was copied', () => {
  it('a column dropped, re-added and backfilled, a table dropped and re-created: the copy stays', async () => {
    const [r1, r2] = [replica(0), replica(1)];
    // With the sidecar stopped: replica1's position stays before all of this.
    await clusters.primary.query('ALTER TABLE items DROP COLUMN note');
    await clusters.primary.query('ALTER TABLE items ADD COLUMN note text');
    await clusters.primary.query(`UPDATE items SET note = 'backfilled'`);
    await clusters.primary.query('DROP TABLE events');
    await clusters.primary.query('CREATE TABLE events (id int PRIMARY KEY, what text)');
    await clusters.primary.query(
      `INSERT INTO events SELECT g, 'new' FROM generate_series(1, 30) g`,
    );
    // replica2's schema is the primary's now (as a pg_dump --schema-only would give).
    await r2.query(SCHEMA);
    const config = writeConfig(clusters.primary, [r1, r2], EXTRA);
    configs.push(config);
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.code).toBe(0);
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await waitForMarker(clusters.primary, [r1, r2]);
      const notes = async (n: PostgresCluster) =>
        await n.query<{ note: string | null; c: string }>(
          'SELECT note, count(*)::text AS c FROM items GROUP BY note ORDER BY 1',
        );
      const events = async (n: PostgresCluster) =>
        await n.query<{ what: string; c: string }>(
          'SELECT what, count(*)::text AS c FROM events GROUP BY what ORDER BY 1',
        );
      expect(await notes(r2)).toEqual(await notes(clusters.primary));
      expect(await events(r2)).toEqual(await events(clusters.primary));
      expect(await notes(r1)).toEqual(await notes(clusters.primary));
      await expectIdentical(clusters.primary, [r1, r2], TABLES);
      // replica1 ran the DDL; replica2 was told it is in its copy.
      await eventually(async () => sidecar.events('ddl-in-copy').length >= 4, 'four ddl-in-copy');
      const inCopy = sidecar.events('ddl-in-copy');
      expect(new Set(inCopy.map((l) => l.replica))).toEqual(new Set([r2.name]));
      expect(inCopy).toHaveLength(4);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('attach --resync refuses a placed replica whose column type differs, captureDdl or not', async () => {
    const [r1, r2] = [replica(0), replica(1)];
    await r2.query('ALTER TABLE items ALTER COLUMN v TYPE varchar(64)');
    const config = writeConfig(clusters.primary, [r1, r2], EXTRA);
    configs.push(config);
    const resynced = await lockstep(['attach', '--resync', r2.name, '--config', config.file]);
    expect(resynced.code).toBe(1);
    expect(resynced.output).toMatch(/\[replica2, table public\.items\]/);
  });
});
