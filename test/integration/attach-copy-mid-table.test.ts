import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { readCatalog } from '../../adapters/postgres/setup/table-catalog.js';
import { copyTable } from '../../adapters/postgres/setup/table-copy.js';
import type { TableCopyOutcome } from '../../plugin/ports/cluster-setup.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { eventually } from '../support/compare-nodes.js';
import { copySessionsGone, definitionsOf } from '../support/table-definitions.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

/** How long a read or a load may take nothing (applyTimeoutMs). */
const STALL_MS = 1_500;

const TERMINATE_COPIES = `SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity
  WHERE application_name = 'lockstep-copy' AND query LIKE 'COPY%'`;

/**
 * Copies table `name` (5,000 rows of 6 kB, loaded slowly: a trigger that
 * fires in the load's replica role) to both replicas; `cut` runs once the
 * first replica loads rows, or, with `beforeCopy`, between the snapshot and
 * the copy. Then: every replica's outcome failed, no copy session is left on
 * any node, and each replica's table is empty with its definitions intact.
 */
async function copyCutOff(
  name: string,
  cut: () => Promise<void>,
  options: { beforeCopy?: boolean; after?: () => Promise<void> } = {},
): Promise<TableCopyOutcome[]> {
  const { primary, replicas } = clusters;
  const schema = `CREATE TABLE ${name} (id int PRIMARY KEY, n bigint, body text, raw bytea);
    CREATE INDEX ${name}_n ON ${name} (n);`;
  for (const node of [primary, ...replicas]) await node.query(schema);
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
  let outcomes: TableCopyOutcome[];
  try {
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const snapshot = (await holder.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string;
    const table = (await readCatalog(holder)).find((t) => t.name === name);
    if (!table) throw new Error(`no catalog entry for ${name}`);
    if (options.beforeCopy) await cut();
    const copying = copyTable({
      stream: 'lockstep',
      table,
      primaryUrl: primary.url,
      stallTimeoutMs: STALL_MS,
      snapshot,
      copyLsn: '0/0' as Lsn,
      replicas: replicas.map((r) => ({ name: r.name, url: r.url })),
    });
    if (!options.beforeCopy) {
      const first = replicas[0] as PostgresCluster;
      await eventually(
        async () =>
          (await first.query('SELECT 1 FROM pg_stat_progress_copy WHERE tuples_processed >= 100'))
            .length > 0,
        'the load under way',
      );
      await cut();
    }
    try {
      outcomes = await copying;
    } finally {
      await options.after?.();
    }
  } finally {
    await holder.end();
  }
  for (const [i, node] of [primary, ...replicas].entries()) {
    await copySessionsGone(node, `the copy sessions on ${node.name} closed`);
    if (i === 0) continue;
    expect(await definitionsOf(node)).toEqual(before[i - 1]);
    expect(await node.query(`SELECT 1 FROM ${name}`)).toEqual([]);
  }
  return outcomes;
}

/** Every replica's outcome failed with an error naming `node` and matching `problem`. */
function expectFailed(outcomes: TableCopyOutcome[], node: string, problem: RegExp): void {
  expect(outcomes.map((o) => [o.replica, o.error?.node, o.error?.problem])).toEqual(
    clusters.replicas.map((r) => [
      r.name,
      node === 'replica' ? r.name : node,
      expect.stringMatching(problem),
    ]),
  );
}

describe('a copy cut off mid-table leaves every replica as it was', () => {
  it('the primary read terminated', async () => {
    const { primary } = clusters;
    const outcomes = await copyCutOff('cut_primary', async () => {
      expect(await primary.query(TERMINATE_COPIES)).toEqual([{ t: true }]);
    });
    expectFailed(outcomes, 'primary', /terminat/);
  });

  it('every replica load terminated: the read ends too, nothing hangs', async () => {
    const outcomes = await copyCutOff('cut_replicas', async () => {
      for (const replica of clusters.replicas)
        expect(await replica.query(TERMINATE_COPIES)).toEqual([{ t: true }]);
    });
    // The server's FATAL, or the reset of the socket the load was writing to when the server
    // closed it (seen on PostgreSQL 18): either way the load's connection was cut, named.
    expectFailed(outcomes, 'replica', /terminat|ECONNRESET|EPIPE/);
  });

  it('the primary frozen (SIGSTOP): the read is dropped after applyTimeoutMs, naming the primary', async () => {
    const { primary } = clusters;
    const outcomes = await copyCutOff('cut_frozen', () => primary.freezeServer(), {
      after: () => primary.thawServer(),
    });
    expectFailed(outcomes, 'primary', /the primary's read of the table did not answer/);
  });

  it('the read waiting on a lock on the primary: dropped after applyTimeoutMs, naming it', async () => {
    const { primary } = clusters;
    const locker = new pg.Client({ connectionString: primary.url });
    await locker.connect();
    try {
      const outcomes = await copyCutOff(
        'cut_locked',
        async () => {
          await locker.query('BEGIN');
          await locker.query('LOCK TABLE cut_locked IN ACCESS EXCLUSIVE MODE');
        },
        { beforeCopy: true },
      );
      expectFailed(outcomes, 'primary', /the primary's read of the table waited on a lock/);
    } finally {
      await locker.end();
    }
  });
});
