import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readCatalog } from '../../adapters/postgres/setup/table-catalog.js';
import { copyTable } from '../../adapters/postgres/setup/table-copy.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { eventually } from '../support/compare-nodes.js';
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

  it.each([
    ['the primary read', 'primary'],
    ['every replica load', 'replicas'],
  ] as const)(
    '%s cut off mid-table leaves every replica untouched, sessions closed',
    async (_, side) => {
      const { primary, replicas } = clusters;
      const name = `cut_${side}`;
      const schema = `CREATE TABLE ${name} (id int PRIMARY KEY, n bigint, body text, raw bytea);
      CREATE INDEX ${name}_n ON ${name} (n);`;
      for (const node of [primary, ...replicas]) await node.query(schema);
      // Slow loads (a trigger that fires in the load's replica role): the copy is cut mid-stream.
      for (const replica of replicas)
        await replica.query(`
        CREATE OR REPLACE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
          $$BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END$$;
        CREATE TRIGGER slow BEFORE INSERT ON ${name} FOR EACH ROW EXECUTE FUNCTION slow();
        ALTER TABLE ${name} ENABLE ALWAYS TRIGGER slow;`);
      await primary.query(`INSERT INTO ${name} SELECT g, g * 7, repeat(md5(g::text), 64),
      decode(repeat(md5(g::text || 'b'), 32), 'hex') FROM generate_series(1, 5000) g`);
      const before = await Promise.all(replicas.map(definitionsOf));
      const holder = new pg.Client({ connectionString: primary.url });
      await holder.connect();
      try {
        await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        const snapshot = (await holder.query('SELECT pg_export_snapshot() AS s')).rows[0]
          .s as string;
        const table = (await readCatalog(holder)).find((t) => t.name === name);
        if (!table) throw new Error(`no catalog entry for ${name}`);
        const copying = copyTable({
          stream: 'lockstep',
          table,
          primaryUrl: primary.url,
          stallTimeoutMs: 60_000,
          snapshot,
          copyLsn: '0/0' as Lsn,
          replicas: replicas.map((r) => ({ name: r.name, url: r.url })),
        });
        const first = replicas[0] as (typeof replicas)[number];
        await eventually(
          async () =>
            (await first.query('SELECT 1 FROM pg_stat_progress_copy WHERE tuples_processed >= 100'))
              .length > 0,
          'the load under way',
        );
        // The primary's backend, or every replica's: no replica can finish its copy.
        const killed = (
          await Promise.all(
            (side === 'primary' ? [primary] : replicas).map((node) =>
              node.query(
                `SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity
                WHERE application_name = 'lockstep-copy' AND query LIKE 'COPY%'`,
              ),
            ),
          )
        ).flat();
        expect(killed).toEqual(
          (side === 'primary' ? [primary] : replicas).map(() => ({ t: true })),
        );
        const outcomes = await copying;
        expect(outcomes.map((o) => [o.replica, o.error?.problem])).toEqual(
          replicas.map((r) => [r.name, expect.stringMatching(/terminat/)]),
        );
      } finally {
        await holder.end();
      }
      for (const [i, node] of [primary, ...replicas].entries()) {
        await copySessionsGone(node, `the copy sessions on ${node.name} closed`);
        if (i === 0) continue;
        expect(await definitionsOf(node)).toEqual(before[i - 1]);
        expect(await node.query(`SELECT 1 FROM ${name}`)).toEqual([]);
      }
    },
  );

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
