import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { LocalClusterProvider } from '../../adapters/local-postgres/local-cluster.js';
import { pgClientTool } from '../../adapters/local-postgres/pg-binaries.js';
import { sleep } from '../../plugin/support/sleep.js';

const run = promisify(execFile);

/** Settings of shared/tools/native-baseline.sh, so figures compare with the issues'. */
export const BASELINE_SETTINGS = {
  shared_buffers: '512MB',
  max_wal_size: '4GB',
  checkpoint_timeout: '30min',
};

/** Real durability (fsync on), as in production and in the native baseline. */
export const benchProvider = new LocalClusterProvider({ fast: false });

/** A client tool from the system install (pgbench, pg_dump, psql); benchmarks need them. */
export function tool(name: string): string {
  const path = pgClientTool(name, benchProvider.binaries.bin);
  if (!path)
    throw new Error(`benchmarks need ${name}: install postgresql-client or set LOCKSTEP_PG_BIN`);
  return path;
}

/** Runs pgbench against a cluster; returns the TPS it reports. */
export async function pgbench(cluster: PostgresCluster, args: string[]): Promise<number> {
  const { stdout } = await run(
    tool('pgbench'),
    [...args, '-h', cluster.host, '-p', String(cluster.port), '-U', 'postgres', 'postgres'],
    {
      maxBuffer: 16 << 20,
    },
  );
  return Number(/tps = ([0-9.]+) \(without/.exec(stdout)?.[1] ?? Number.NaN);
}

/** Copies the primary's schema to other clusters with pg_dump --schema-only. */
export async function copySchema(
  from: PostgresCluster,
  to: readonly PostgresCluster[],
): Promise<void> {
  const { stdout } = await run(
    tool('pg_dump'),
    ['-s', '-h', from.host, '-p', String(from.port), '-U', 'postgres', 'postgres'],
    {
      maxBuffer: 64 << 20,
    },
  );
  for (const cluster of to) {
    const client = new pg.Client({ connectionString: cluster.url });
    await client.connect();
    try {
      // Recent pg_dump versions emit psql meta-commands (\restrict …) that only psql understands.
      await client.query(stdout.replace(/^\\.*$/gm, ''));
    } finally {
      await client.end();
    }
  }
}

/** The equality signature of shared/tools/native-baseline.sh (accounts, branches, tellers, history, bulk), and the wide rows. */
export const SIGNATURE_SQL = `SELECT
 (SELECT count(*)||':'||sum(abalance)||':'||sum(hashtext(a::text)::bigint) FROM pgbench_accounts a)
 ||' br:'||(SELECT md5(string_agg(b::text, ',' ORDER BY bid)) FROM pgbench_branches b)
 ||' tl:'||(SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t)
 ||' hi:'||(SELECT count(*)||':'||coalesce(sum(delta),0)||':'||coalesce(sum(hashtext(h::text)::bigint),0) FROM pgbench_history h)
 ||' bulk:'||(SELECT count(*)||':'||coalesce(sum(id),0)||':'||coalesce(sum(hashtext(payload)::bigint),0) FROM bulk)
 ||' wide:'||(SELECT count(*)||':'||coalesce(sum(hashtext(body)::bigint),0)||':'||coalesce(sum(hashtext(md5(blob))::bigint),0) FROM wide) AS sig`;

/** True when every replica's signature equals the primary's. */
export async function identical(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
): Promise<boolean> {
  const sigs = await Promise.all(
    [primary, ...replicas].map(
      async (c) => (await c.query<{ sig: string }>(SIGNATURE_SQL))[0]?.sig,
    ),
  );
  return sigs.every((s) => s === sigs[0]);
}

/** Waits until `sql` (a boolean condition) holds on every replica, polling each every 5 ms; returns when the last one did. */
export async function waitOnAll(
  replicas: readonly PostgresCluster[],
  condition: string,
  timeoutMs = 600_000,
): Promise<number> {
  const done = await Promise.all(
    replicas.map(async (replica) => {
      const client = new pg.Client({ connectionString: replica.url });
      await client.connect();
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { rows } = await client.query(`SELECT (${condition}) AS ok`);
          if (rows[0]?.ok) return performance.now();
          if (Date.now() > deadline)
            throw new Error(`timed out waiting for ${condition} on ${replica.name}`);
          await sleep(5);
        }
      } finally {
        await client.end();
      }
    }),
  );
  return Math.max(...done);
}

/** pgbench transactions so far: one history row each. */
export async function historyCount(cluster: PostgresCluster): Promise<number> {
  return Number(
    (await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history'))[0]?.n,
  );
}

/** Inserts a marker row on the primary and returns its id. */
export async function mark(primary: PostgresCluster): Promise<number> {
  return Number(
    (await primary.query<{ id: string }>('INSERT INTO nb_marker DEFAULT VALUES RETURNING id'))[0]
      ?.id,
  );
}

/**
 * The tables every system copies in (a), on the primary: pgbench's, `bulk`
 * for (d), `nb_marker` for the markers, and `wide`: `rows` rows of 10–40 kB
 * text and 5–20 kB bytea, out of line in TOAST and not compressible (md5
 * digits, so pglz finds no repeats). Returns the rows (a) copies.
 */
export async function createBenchTables(
  primary: PostgresCluster,
  scale: number,
  wideRows: number,
): Promise<number> {
  await pgbench(primary, ['-i', '-q', '-s', String(scale)]);
  await primary.query(`ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
    CREATE TABLE bulk (id bigint PRIMARY KEY, payload text);
    CREATE TABLE nb_marker (id bigserial PRIMARY KEY, t timestamptz DEFAULT clock_timestamp());
    CREATE TABLE wide (id int PRIMARY KEY, body text NOT NULL, blob bytea NOT NULL);
    INSERT INTO wide SELECT g,
      (SELECT string_agg(md5(g || ':' || i), '') FROM generate_series(1, 320 * (1 + g % 4)) i),
      (SELECT decode(string_agg(md5(i || ':' || g), ''), 'hex') FROM generate_series(1, 320 * (1 + g % 4)) i)
    FROM generate_series(1, ${Math.floor(wideRows)}) g;`);
  await primary.query('VACUUM ANALYZE');
  const [row] = await primary.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches)
      + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM wide) AS n`,
  );
  return Number(row?.n);
}
