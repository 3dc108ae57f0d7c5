import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { twoReplicas, useClusters } from '../support/use-clusters.js';

/** A table of a few MB, and a marker table (attach needs none, the harness convention). */
const schema = (rows: number) => `
  CREATE TABLE accounts (id int PRIMARY KEY, filler text NOT NULL);
  CREATE TABLE marker (id bigserial PRIMARY KEY);
  -- ${rows} rows on the primary only (the replicas get theirs from attach).`;

const fill = (rows: number) =>
  `INSERT INTO accounts SELECT g, repeat('x', 80) FROM generate_series(1, ${rows}) g`;

interface Residency {
  blocks: number;
  resident: number;
  /** Resident blocks before the last TAIL (where the load's own buffer rings leave some). */
  residentHead: number;
}

/** Block numbers the COPY's and ANALYZE's buffer rings may leave resident at a table's end. */
const TAIL = 1024;
/** Blocks of one bulk-read or vacuum buffer ring (256 kB). */
const RING = 32;

/** Blocks of accounts' heap and primary key on `node`, and how many are in its shared buffers. */
async function residency(node: PostgresCluster): Promise<Record<string, Residency>> {
  const rows = await node.query<{ relation: string } & Record<keyof Residency, string>>(
    `SELECT c.relname AS relation, pg_relation_size(c.oid) / 8192 AS blocks,
            count(b.*) AS resident,
            count(b.*) FILTER (WHERE b.relblocknumber < pg_relation_size(c.oid) / 8192 - $1)
              AS "residentHead"
       FROM pg_class c
       LEFT JOIN pg_buffercache b ON b.relfilenode = pg_relation_filenode(c.oid)
        AND b.relforknumber = 0
        AND b.reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
      WHERE c.relname IN ('accounts', 'accounts_pkey')
      GROUP BY c.oid, c.relname`,
    [TAIL],
  );
  return Object.fromEntries(
    rows.map((r) => [
      r.relation,
      {
        blocks: Number(r.blocks),
        resident: Number(r.resident),
        residentHead: Number(r.residentHead),
      },
    ]),
  );
}

/** accounts' statistics counters on `node`, once the load's row counts reached them. */
async function countersAfterLoad(node: PostgresCluster, rows: number) {
  type Counters = { inserted: string; modified: string; analyzed: boolean };
  let counters: Counters | undefined;
  await eventually(async () => {
    [counters] = await node.query<Counters>(
      `SELECT n_tup_ins AS inserted, n_mod_since_analyze AS modified,
              last_analyze IS NOT NULL AS analyzed
         FROM pg_stat_user_tables WHERE relname = 'accounts'`,
    );
    return Number(counters?.inserted) === rows;
  }, "the load's row counts in pg_stat_user_tables");
  return { modified: Number(counters?.modified), analyzed: counters?.analyzed };
}

describe('attach leaves copied tables warm and analyzed', () => {
  const clusters = useClusters({ replicas: 2 });

  it('reads heap and primary key into shared buffers, with or without pg_prewarm', async () => {
    const { primary } = clusters;
    const [r1, r2] = twoReplicas(clusters.replicas);
    const rows = 60_000;
    for (const node of [primary, r1, r2]) await node.query(schema(rows));
    await primary.query(fill(rows));
    for (const replica of [r1, r2]) await replica.query('CREATE EXTENSION pg_buffercache');
    // replica2 warms through pg_prewarm, replica1 through plain reads.
    await r2.query('CREATE EXTENSION pg_prewarm');
    const config = writeConfig(primary, clusters.replicas);
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.code, attached.output).toBe(0);
      for (const replica of [r1, r2]) {
        const { accounts, accounts_pkey: key } = await residency(replica);
        expect(accounts?.blocks).toBeGreaterThan(500);
        expect(accounts?.resident).toBe(accounts?.blocks);
        // The plain read of an index passes its metapage and some upper-level or empty pages by
        // (PostgreSQL 18 leaves about 2 % unread).
        expect(key?.resident, attached.output).toBeGreaterThanOrEqual(
          Math.floor((key?.blocks ?? 0) * 0.95),
        );
        // Analyzed after the load's counts arrived: autovacuum has nothing to analyze again.
        expect(await countersAfterLoad(replica, rows)).toEqual({ modified: 0, analyzed: true });
      }
    } finally {
      config.remove();
    }
  }, 180_000);
});

describe('attach into a replica with little shared_buffers', () => {
  // A budget of half of 32MB: 2048 blocks, against a table of about 5,100.
  const clusters = useClusters({ replicas: 1, replica: { settings: { shared_buffers: '32MB' } } });

  it('succeeds and warms the budget, no more', async () => {
    const { primary } = clusters;
    const replica = clusters.replicas[0] as PostgresCluster;
    const rows = 300_000;
    for (const node of [primary, replica]) await node.query(schema(rows));
    await primary.query(fill(rows));
    await replica.query('CREATE EXTENSION pg_buffercache');
    const config = writeConfig(primary, clusters.replicas);
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.code, attached.output).toBe(0);
      const { accounts, accounts_pkey: key } = await residency(replica);
      const heapBlocks = accounts?.blocks ?? 0;
      const keyBlocks = key?.blocks ?? 0;
      expect(heapBlocks + keyBlocks).toBeGreaterThan(4096);
      // The key first, whole; the heap's first blocks with what is left of the budget, no more
      // (an index-only scan also reads the few heap blocks COPY FREEZE left not all-visible).
      expect(key?.resident).toBeGreaterThanOrEqual(Math.floor(keyBlocks * 0.95));
      expect(key?.resident).toBeLessThanOrEqual(keyBlocks);
      const heapShare = 2048 - keyBlocks;
      expect(heapBlocks - TAIL).toBeGreaterThan(heapShare);
      expect(accounts?.residentHead).toBeGreaterThan(heapShare / 2);
      // Plus what one 256 kB buffer ring of the load's own scans may leave outside the tail.
      expect(accounts?.residentHead).toBeLessThanOrEqual(heapShare + RING);
    } finally {
      config.remove();
    }
  }, 180_000);
});
