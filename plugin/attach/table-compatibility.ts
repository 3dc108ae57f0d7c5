import type { CatalogTable } from '../ports/catalog-table.js';
import { sqlName } from '../protocol/sql-name.js';

/** One way a replica's table cannot take the primary's rows. */
export interface TableMismatch {
  readonly table: string;
  readonly column?: string;
  readonly problem: string;
  readonly fix: string;
}

const label = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;

/** The problem text for a replicated table a replica lacks (attach --create-schema looks for it). */
export const MISSING_TABLE_PROBLEM = 'the table does not exist on the replica';

/**
 * Compares a replicated table on the primary with the same table on a replica.
 * Every primary column must exist on the replica with the same type; an extra
 * replica column must accept rows that do not mention it (nullable or defaulted).
 */
export function compareTable(
  primary: CatalogTable,
  replica: CatalogTable | undefined,
): TableMismatch[] {
  const table = label(primary);
  if (!replica) {
    return [
      {
        table,
        problem: MISSING_TABLE_PROBLEM,
        fix: "create it with the primary's definition (pg_dump --schema-only -t …), or run lockstep attach --create-schema",
      },
    ];
  }
  const mismatches: TableMismatch[] = [];
  const replicaColumns = new Map(replica.columns.map((c) => [c.name, c]));
  for (const column of primary.columns) {
    const other = replicaColumns.get(column.name);
    if (!other) {
      mismatches.push({
        table,
        column: column.name,
        problem: `column "${column.name}" (${column.type}) is missing on the replica`,
        fix: `ALTER TABLE on the replica: ADD COLUMN ${sqlName(column.name)} ${column.type}`,
      });
    } else if (other.type !== column.type) {
      mismatches.push({
        table,
        column: column.name,
        problem: `column "${column.name}" is ${other.type} on the replica but ${column.type} on the primary`,
        fix: `ALTER TABLE on the replica: ALTER COLUMN ${sqlName(column.name)} TYPE ${column.type}`,
      });
    }
  }
  const primaryNames = new Set(primary.columns.map((c) => c.name));
  for (const column of replica.columns) {
    if (!primaryNames.has(column.name) && column.notNull && !column.hasDefault) {
      mismatches.push({
        table,
        column: column.name,
        problem: `column "${column.name}" exists only on the replica and is NOT NULL without a default`,
        fix: `on the replica, drop the column, give it a DEFAULT, or make it nullable`,
      });
    }
  }
  return mismatches;
}
