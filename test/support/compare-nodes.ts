import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';

/**
 * Reads a table's rows in a stable order, as text, for a row-by-row compare.
 * Ordering by the whole row's text works with or without a primary key.
 */
async function rowsOf(node: PostgresCluster, table: string): Promise<string[]> {
  const rows = await node.query<{ r: string }>(`SELECT t::text AS r FROM ${table} t ORDER BY 1`);
  return rows.map((row) => row.r);
}

/** Asserts every table is identical, row by row, on the primary and every replica. */
export async function expectIdentical(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
  tables: readonly string[],
): Promise<void> {
  for (const table of tables) {
    const expected = await rowsOf(primary, table);
    for (const replica of replicas) {
      const actual = await rowsOf(replica, table);
      expect({ table, node: replica.name, count: actual.length }).toEqual({
        table,
        node: replica.name,
        count: expected.length,
      });
      const firstDifference = actual.findIndex((row, i) => row !== expected[i]);
      expect({ table, node: replica.name, firstDifference, row: actual[firstDifference] }).toEqual({
        table,
        node: replica.name,
        firstDifference: -1,
        row: undefined,
      });
    }
  }
}

/** Waits until `check` holds (polling), failing with `what` after `ms`. */
export async function eventually(
  check: () => Promise<boolean>,
  what: string,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Inserts a marker row on the primary and waits until every replica has it: everything before it was applied. */
export async function waitForMarker(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
  ms = 120_000,
): Promise<void> {
  const [row] = await primary.query<{ id: string }>(
    'INSERT INTO marker DEFAULT VALUES RETURNING id',
  );
  const id = row?.id;
  await eventually(
    async () => {
      for (const replica of replicas) {
        const found = await replica.query('SELECT 1 FROM marker WHERE id = $1', [id]);
        if (found.length === 0) return false;
      }
      return true;
    },
    `marker ${id} on every replica`,
    ms,
  );
}

/** The version a replica has durably applied (lockstep.applied). */
export async function appliedVersion(node: PostgresCluster): Promise<number> {
  return Number(
    (await node.query<{ v: string }>('SELECT version::text AS v FROM lockstep.applied'))[0]?.v,
  );
}

/** lockstep gids still prepared on each node (own database only). */
export async function preparedGids(nodes: readonly PostgresCluster[]): Promise<string[]> {
  const found: string[] = [];
  for (const node of nodes) {
    const rows = await node.query<{ gid: string }>(
      `SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'lockstep\\_%'`,
    );
    for (const row of rows) found.push(`${node.name}:${row.gid}`);
  }
  return found;
}

/** How many rows `table` holds on `node`. */
export async function rowCount(node: PostgresCluster, table: string): Promise<number> {
  const [r] = await node.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r?.n ?? -1;
}
