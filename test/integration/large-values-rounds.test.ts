import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { withSidecar } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `
    CREATE TABLE docs (id int PRIMARY KEY, t text);
    CREATE TABLE notes (id int PRIMARY KEY, t text);
    CREATE TABLE marker (id bigserial PRIMARY KEY);`,
  // A window far lighter than one large row: it must still pass, row after row.
  config: { twoPhase: { tables: ['public.docs'], voteTimeoutMs: 3_000 }, windowChanges: 500 },
});

const text = (mb: number, salt: string) =>
  `repeat('${salt}é€😀 x', ${Math.round((mb * 1024 * 1024) / 13)})`;

async function digest(node: PostgresCluster): Promise<unknown[]> {
  return node.query(`
    SELECT 'docs' AS tab, id, md5(t) AS t FROM docs
    UNION ALL SELECT 'notes', id, md5(t) FROM notes ORDER BY 1, 2`);
}

async function expectSame(): Promise<void> {
  const { primary, replicas } = clusters;
  await waitForMarker(primary, replicas);
  const expected = await digest(primary);
  for (const replica of replicas) expect(await digest(replica)).toEqual(expected);
  expect(await preparedGids([primary, ...replicas])).toEqual([]);
}

describe('large rows in two-phase rounds and catch-up', () => {
  it('commits a large critical row on both replicas, refused until a replica can apply it', async () => {
    const [r1] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await r1.query(`ALTER TABLE docs ADD CONSTRAINT not_bad CHECK (t NOT LIKE 'bad%')`);
    await withSidecar(clusters.configFile, async (sidecar) => {
      const { primary } = clusters;
      await primary.query(`BEGIN;
        INSERT INTO notes VALUES (1, 'small');
        INSERT INTO docs VALUES (1, 'bad' || ${text(2, 'a')});
        INSERT INTO docs VALUES (2, 'small doc');
        COMMIT`);
      await eventually(
        async () => sidecar.logLines().some((l) => /^two-phase round aborted/.test(String(l.msg))),
        'a round refused by replica1',
      );
      for (const replica of clusters.replicas)
        expect(await replica.query('SELECT id FROM docs')).toEqual([]);
      await r1.query('ALTER TABLE docs DROP CONSTRAINT not_bad');
      await expectSame();
    });
  });

  it('a replica down through many large rows catches up to identical bytes', async () => {
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await withSidecar(clusters.configFile, async () => {
      const { primary } = clusters;
      await r2.stopServer('immediate');
      for (let i = 0; i < 6; i++)
        await primary.query(`BEGIN;
          INSERT INTO notes SELECT ${100 + i * 10} + g, ${text(1.5, 'n')} || g FROM generate_series(1, 3) g;
          UPDATE notes SET t = 'small ' || id WHERE id = ${100 + i * 10 + 2};
          COMMIT`);
      // A critical large row while replica2 is down: its commit waits for the round.
      const critical = primary.query(`INSERT INTO docs VALUES (100, ${text(3, 'd')})`);
      await r2.startServer();
      await critical;
      await expectSame();
    });
  });
});
