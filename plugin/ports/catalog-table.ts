/** A table named by schema and name (unquoted). */
export interface TableName {
  readonly schema: string;
  readonly name: string;
}

/** One column as a node's catalog describes it. */
export interface CatalogColumn {
  readonly name: string;
  /** `format_type` of the column, e.g. `numeric(10,2)`. */
  readonly type: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
}

/** One table as a node's catalog describes it. */
export interface CatalogTable extends TableName {
  /** pg_class.relreplident: d(efault), n(othing), f(ull), i(ndex). */
  readonly replicaIdentity: 'd' | 'n' | 'f' | 'i';
  readonly hasPrimaryKey: boolean;
  /** Primary key columns in key order (empty without one). */
  readonly primaryKey: readonly string[];
  /** Columns in attribute order; generated columns are left out (each node computes its own). */
  readonly columns: readonly CatalogColumn[];
}
