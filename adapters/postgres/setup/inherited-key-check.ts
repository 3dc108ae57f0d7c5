import type pg from 'pg';

/**
 * A partition's (or inheritance child's) foreign keys copied from its parent:
 * they cannot be dropped and re-added on the partition alone, so their rows
 * are checked with the query the key's trigger would run.
 */
const INHERITED_KEYS = `
  SELECT c.conname AS name, c.confmatchtype = 'f' AS full,
         CASE WHEN r.relkind = 'p' THEN '' ELSE 'ONLY ' END || c.confrelid::regclass::text AS ref,
         ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
         ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS refs
    FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid
   WHERE c.conrelid = to_regclass($1) AND c.contype = 'f' AND c.convalidated
     AND (c.conparentid <> 0 OR c.coninhcount > 0)
   ORDER BY c.conname`;

/** Throws (naming the key) when a row of `table` breaks an inherited foreign key. */
export async function checkInheritedKeys(client: pg.Client, table: string): Promise<void> {
  const { rows } = await client.query<{
    name: string;
    full: boolean;
    ref: string;
    cols: string[];
    refs: string[];
  }>(INHERITED_KEYS, [table]);
  for (const key of rows) {
    const set = key.cols.map((c) => `t.${c} IS NOT NULL`).join(' AND ');
    const match = key.cols.map((c, i) => `r.${key.refs[i]} = t.${c}`).join(' AND ');
    // MATCH FULL: a key with some columns null and others not is a violation too.
    const partial = key.full
      ? ` OR (NOT (${set}) AND NOT (${key.cols.map((c) => `t.${c} IS NULL`).join(' AND ')}))`
      : '';
    const { rows: bad } = await client.query(
      `SELECT 1 FROM ONLY ${table} t
        WHERE (${set} AND NOT EXISTS (SELECT 1 FROM ${key.ref} r WHERE ${match}))${partial} LIMIT 1`,
    );
    if (bad.length > 0)
      throw Object.assign(new Error(`a row violates foreign key constraint "${key.name}"`), {
        code: '23503',
      });
  }
}
