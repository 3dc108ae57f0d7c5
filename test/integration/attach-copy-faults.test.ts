import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readCatalog } from '../../adapters/postgres/setup/table-catalog.js';
import { copyTable } from '../../adapters/postgres/setup/table-copy.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { copySessionsGone, definitionsOf, recordedCopies } from '../support/table-definitions.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

describe('copy faults leave replicas as they were', () => {
  it('a primary read that fails before any row leaves every replica untouched, sessions closed', async () => {
    const { primary } = clusters;
    const schema = `CREATE TABLE early (id int PRIMARY KEY, v text);
      CREATE INDEX early_v ON early (v);`;
    for (const node of [primary, ...clusters.replicas]) await node.query(schema);
    await primary.query(`INSERT INTO early SELECT g, 'v' || g FROM generate_series(1, 1000) g`);
    const before = await Promise.all(clusters.replicas.map(definitionsOf));
    const client = new pg.Client({ connectionString: primary.url });
    await client.connect();
    const table = (await readCatalog(client)).find((t) => t.name === 'early');
    await client.end();
    if (!table) throw new Error('no catalog entry for early');
    const outcomes = await copyTable({
      stream: 'lockstep',
      table,
      primaryUrl: primary.url,
      stallTimeoutMs: 30_000,
      // No such snapshot: SET TRANSACTION SNAPSHOT fails before COPY TO starts.
      snapshot: '00000003-0000BEEF-1',
      copyLsn: '0/0' as Lsn,
      replicas: clusters.replicas.map((r) => ({ name: r.name, url: r.url })),
    });
    expect(outcomes.map((o) => [o.replica, o.error?.problem])).toEqual(
      clusters.replicas.map((r) => [r.name, expect.stringMatching(/snapshot/)]),
    );
    for (const [i, replica] of clusters.replicas.entries()) {
      await copySessionsGone(replica, 'the copy sessions closed');
      expect(await definitionsOf(replica)).toEqual(before[i]);
      expect(await replica.query('SELECT 1 FROM early')).toEqual([]);
    }
  });

  it("checks a partition's foreign key inherited from its partitioned parent", async () => {
    const { primary } = clusters;
    const replica = clusters.replicas[0] as (typeof clusters.replicas)[number];
    await primary.query(`
      CREATE TABLE ref (id int PRIMARY KEY);
      CREATE TABLE part (id int PRIMARY KEY, ref_id int CONSTRAINT part_ref_fk REFERENCES ref (id))
        PARTITION BY RANGE (id);
      CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (0) TO (1000);
      INSERT INTO ref SELECT generate_series(1, 10);
      INSERT INTO part SELECT g, 1 + g % 10 FROM generate_series(1, 100) g;`);
    // The replica's key points at a table of its own, not replicated and empty.
    await replica.query(`
      CREATE SCHEMA local; CREATE TABLE local.other (id int PRIMARY KEY);
      CREATE TABLE ref (id int PRIMARY KEY);
      CREATE TABLE part (id int PRIMARY KEY, ref_id int CONSTRAINT part_ref_fk REFERENCES local.other (id))
        PARTITION BY RANGE (id);
      CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (0) TO (1000);`);
    const config = writeConfig(primary, [replica], { tables: ['public.ref', 'public.part_1'] });
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      const orphans = await replica.query(
        'SELECT 1 FROM part_1 p WHERE NOT EXISTS (SELECT 1 FROM local.other o WHERE o.id = p.ref_id)',
      );
      // A key the replica reports valid must hold: either attach refused, or no orphans.
      expect({ code: attached.code, orphans: orphans.length > 0 }).toEqual({
        code: 1,
        orphans: true,
      });
      expect(attached.output).toMatch(
        /\[replica1, table public\.part_1\] checking foreign key .*violates foreign key constraint "part_ref_fk"/,
      );
      expect(await recordedCopies(replica)).toContain('part_1:false');
    } finally {
      config.remove();
    }
  });
});
