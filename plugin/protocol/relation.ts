/** A relation's identity as the primary describes it in pgoutput relation messages. */

/** How the primary identifies old rows of a table (pg_class.relreplident). */
export type ReplicaIdentity = 'default' | 'nothing' | 'full' | 'index';

/** One column of a replicated relation. */
export interface RelationColumn {
  /** Column name, unquoted. */
  readonly name: string;
  /** Type OID on the primary. */
  readonly typeOid: number;
  /** Type modifier (`atttypmod`), -1 when none. */
  readonly typeMod: number;
  /** Schema-qualified type name for non-built-in types (enums, domains), when the primary sent it. */
  readonly typeName: string | null;
  /** Part of the replica identity (every column under REPLICA IDENTITY FULL). */
  readonly isKey: boolean;
}

/** A replicated table, resolved from the latest relation message for its OID. */
export interface Relation {
  /** The table's OID on the primary (meaningless on replicas). */
  readonly oid: number;
  /** Schema name, unquoted. */
  readonly schema: string;
  /** Table name, unquoted. */
  readonly name: string;
  /** Replica identity of the table on the primary. */
  readonly replicaIdentity: ReplicaIdentity;
  /** Columns in the primary's attribute order; rows are aligned with them. */
  readonly columns: readonly RelationColumn[];
  /** Indexes (into `columns`) of the identity columns, in column order. */
  readonly keyIndexes: readonly number[];
}

/** `schema.name` for messages; not for SQL (use quoted identifiers there). */
export function relationLabel(relation: Pick<Relation, 'schema' | 'name'>): string {
  return `${relation.schema}.${relation.name}`;
}
