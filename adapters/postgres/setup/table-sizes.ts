import type pg from 'pg';
import type { TableSize } from '../../../plugin/ports/cluster-setup.js';

/** Sizes of `tables` (`schema.name` keys, unquoted), for the copy order (largest first) and progress estimates. */
export async function tableSizes(
  client: pg.ClientBase,
  tables: ReadonlyArray<{ schema: string; name: string }>,
): Promise<Map<string, TableSize>> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string; est: number }>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_table_size(c.oid)::text AS bytes,
            greatest(c.reltuples, 1)::float8 AS est
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS t(s, r) ON t.s = n.nspname AND t.r = c.relname`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(
    rows.map((r) => [`${r.schema}.${r.name}`, { bytes: Number(r.bytes), rows: Number(r.est) }]),
  );
}
