import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import { type Relation, relationLabel } from '../../../plugin/protocol/index.js';
import { quoteQualified } from '../sql-identifier.js';
import type { ReplicaColumnTypes } from './bulk-statement.js';

/** Runs a catalog query on the replica; a failure comes back as the apply error to report. */
export type CatalogQuery = <R extends pg.QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<R[]>;

/**
 * The type to cast each column's text values to, per relation: the column's
 * type without its typmod (`format_type(…, -1)`: `character varying`, `bpchar`,
 * `"bit"`, `numeric`), a domain replaced by its base type and an array of
 * domains by an array of that. An explicit cast applies a typmod by cutting
 * the value (`'abcdefgh'::varchar(5)` is 'abcde', likewise char(n), bit(n) and
 * a domain over them), whereas the assignment into the column applies it as
 * a row-by-row INSERT or UPDATE does: a value too long fails (22001), a
 * numeric or timestamp is rounded to the column's scale. So a replica column
 * narrower than the primary's halts the replica instead of losing data.
 */
const CAST_TYPES = `
  WITH RECURSIVE cols AS (
    SELECT r.ord AS rel, a.attname AS name, a.atttypid AS typ
      FROM unnest($1::text[]) WITH ORDINALITY AS r(tbl, ord)
      JOIN pg_attribute a ON a.attrelid = r.tbl::regclass
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT c.rel, c.name, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE b.typarray END
      FROM cols c JOIN pg_type t ON t.oid = c.typ
      LEFT JOIN pg_type e ON e.oid = t.typelem AND e.typtype = 'd' AND e.typarray = t.oid
      LEFT JOIN pg_type b ON b.oid = e.typbasetype
     WHERE t.typtype = 'd' OR e.oid IS NOT NULL)
  SELECT c.rel, c.name, format_type(c.typ, -1) AS type
    FROM cols c JOIN pg_type t ON t.oid = c.typ
   WHERE t.typtype <> 'd'
     AND NOT EXISTS (SELECT 1 FROM pg_type e
                      WHERE e.oid = t.typelem AND e.typtype = 'd' AND e.typarray = t.oid)`;

/**
 * The replica's types to cast each relation's values to (CAST_TYPES), in
 * the primary's column order, cached per relation message (a new message
 * after ALTER TABLE asks again). A batch's first use of its tables costs
 * one catalog round trip.
 */
export class ColumnTypes {
  private known = new WeakMap<Relation, ReplicaColumnTypes>();

  constructor(private readonly node: string) {}

  /** Forgets every type (a new connection may meet a changed schema). */
  clear(): void {
    this.known = new WeakMap();
  }

  async of(relation: Relation, version: number, query: CatalogQuery): Promise<ReplicaColumnTypes> {
    return (await this.ofAll([relation], version, query)).get(relation) as ReplicaColumnTypes;
  }

  async ofAll(
    relations: readonly Relation[],
    version: number,
    query: CatalogQuery,
  ): Promise<Map<Relation, ReplicaColumnTypes>> {
    const result = new Map<Relation, ReplicaColumnTypes>();
    const unknown: Relation[] = [];
    for (const relation of relations) {
      const known = this.known.get(relation);
      if (known) result.set(relation, known);
      else unknown.push(relation);
    }
    if (unknown.length === 0) return result;
    const rows = await query<{ rel: number; name: string; type: string }>(CAST_TYPES, [
      unknown.map((r) => quoteQualified(r.schema, r.name)),
    ]);
    const byRelation = unknown.map(() => new Map<string, string>());
    for (const row of rows) byRelation[Number(row.rel) - 1]?.set(row.name, row.type);
    unknown.forEach((relation, index) => {
      const byName = byRelation[index] as Map<string, string>;
      const types = relation.columns.map((column) => {
        const type = byName.get(column.name);
        if (!type) {
          throw new ApplyError({
            node: this.node,
            kind: 'schema',
            version,
            table: relationLabel(relation),
            problem: `column "${column.name}" does not exist on the replica`,
            fix: `add the column on replica "${this.node}" with the primary's type (lockstep doctor lists the differences)`,
          });
        }
        return type;
      });
      const entry = { types };
      this.known.set(relation, entry);
      result.set(relation, entry);
    });
    return result;
  }
}
