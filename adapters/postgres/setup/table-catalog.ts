import type { ClientBase } from 'pg';
import type { CatalogColumn, CatalogTable } from '../../../plugin/ports/catalog-table.js';
import { matchesAnyPattern, type TablePattern } from '../../../plugin/protocol/index.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';

export type { CatalogColumn, CatalogTable } from '../../../plugin/ports/catalog-table.js';

const SYSTEM_SCHEMAS = ['pg_catalog', 'information_schema', 'lockstep'];

/** Every ordinary table of the node, with its columns. lockstep's own schema is never included. */
export async function readCatalog(client: ClientBase): Promise<CatalogTable[]> {
  const { rows } = await client.query<{
    schema: string;
    name: string;
    replident: 'd' | 'n' | 'f' | 'i';
    has_pk: boolean;
    pk: string[] | null;
    columns: CatalogColumn[] | null;
  }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relreplident AS replident,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
            (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                                               'notNull', a.attnotnull, 'hasDefault', a.atthasdef)
                             ORDER BY a.attnum)
               FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname <> ALL($1) AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY 1, 2`,
    [SYSTEM_SCHEMAS],
  );
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    replicaIdentity: r.replident,
    hasPrimaryKey: r.has_pk,
    primaryKey: r.pk ?? [],
    columns: r.columns ?? [],
  }));
}

/** The tables of a catalog that the configuration replicates. */
export function selectReplicated(
  catalog: readonly CatalogTable[],
  patterns: readonly TablePattern[],
): CatalogTable[] {
  return catalog.filter((t) => matchesAnyPattern(patterns, t));
}

/**
 * A CREATE TABLE for a replica from the primary's catalog: columns, types,
 * NOT NULL and the primary key. Defaults, other indexes and constraints are
 * left out: replicated rows carry every value, and a replica needs no more
 * to apply them (types such as enums must already exist there).
 */
export function createTableStatement(table: CatalogTable): string {
  const columns = table.columns.map(
    (c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}`,
  );
  if (table.primaryKey.length)
    columns.push(`PRIMARY KEY (${table.primaryKey.map(quoteIdent).join(', ')})`);
  return `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)}; CREATE TABLE ${quoteQualified(table.schema, table.name)} (${columns.join(', ')})`;
}
