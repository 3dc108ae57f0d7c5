import type pg from 'pg';
import { quoteLiteral as literal, quoteIdent as quote } from '../sql-identifier.js';

/** An index (or the constraint it backs) dropped for a load, as the replica defined it. */
interface DroppedIndex {
  /** Schema-qualified and quoted. */
  readonly index: string;
  readonly name: string;
  /** The constraint the index backs (primary key, unique, exclusion), else null. */
  readonly constraint: string | null;
  /** `CREATE INDEX …` for a plain index, the constraint's definition for a constraint. */
  readonly definition: string;
  readonly tablespace: string | null;
  readonly indexComment: string | null;
  readonly constraintComment: string | null;
  readonly clustered: boolean;
  /** `ALTER INDEX … SET STATISTICS` targets set on its columns: [column number, target]. */
  readonly statistics: ReadonlyArray<[number, number]>;
}

/**
 * Indexes a load may drop and rebuild: not the replica identity index (kept:
 * it names the identity), not an index a foreign key of another table
 * depends on, not a partition's index (its parent owns it), not an invalid
 * one (rebuilt, it would come back valid).
 */
const DROPPABLE = `
  SELECT format('%I.%I', n.nspname, ic.relname) AS index, ic.relname AS name,
         con.conname AS constraint,
         CASE WHEN con.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
              ELSE pg_get_constraintdef(con.oid) END AS definition,
         ts.spcname AS tablespace,
         obj_description(i.indexrelid, 'pg_class') AS "indexComment",
         obj_description(con.oid, 'pg_constraint') AS "constraintComment",
         i.indisclustered AS clustered,
         ARRAY(SELECT json_build_array(a.attnum, a.attstattarget) FROM pg_attribute a
                WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0 ORDER BY a.attnum) AS statistics
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = ic.relnamespace
    LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
    LEFT JOIN pg_constraint con
      ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
   WHERE i.indrelid = $1::regclass AND i.indisvalid AND NOT i.indisreplident
     AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
     AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
   ORDER BY ic.relname`;

/** What a replica table's load may do: set up inside the load's transaction. */
export interface PreparedLoad {
  /** The table was truncated in this transaction: COPY … FREEZE applies. */
  readonly freeze: boolean;
  /** Recreates what was dropped, exactly as it was. */
  rebuild(): Promise<void>;
}

/**
 * Inside the load's transaction, with the table locked and empty: drops its
 * droppable indexes and index-backed constraints (a load into a table
 * without them is a heap append; the rebuild is one sorted build each, as
 * pg_restore does) and truncates it where it can, for COPY FREEZE. The drop
 * commits only with the rebuild, in the same transaction: an interrupted load
 * rolls both back, so a replica never keeps a table without its indexes.
 * A role that does not own the table loads into it as it is.
 */
export async function prepareLoad(client: pg.Client, table: string): Promise<PreparedLoad> {
  const { rows: facts } = await client.query<{ owner: boolean; referenced: boolean }>(
    `SELECT pg_has_role(c.relowner, 'USAGE') AS owner,
            EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.oid) AS referenced
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [table],
  );
  if (!facts[0]?.owner) return { freeze: false, rebuild: async () => undefined };
  const { rows: found } = await client.query<DroppedIndex>(DROPPABLE, [table]);
  const dropped: DroppedIndex[] = [];
  for (const index of found) if (await dropIndex(client, table, index)) dropped.push(index);
  // TRUNCATE refuses a table another table's foreign key references.
  const freeze = !facts[0].referenced;
  if (freeze) await client.query(`TRUNCATE ONLY ${table}`);
  return { freeze, rebuild: () => rebuildIndexes(client, table, dropped) };
}

/** Drops one index; false when something else depends on it (it stays, the load maintains it). */
async function dropIndex(client: pg.Client, table: string, index: DroppedIndex): Promise<boolean> {
  await client.query('SAVEPOINT lockstep_drop_index');
  try {
    await client.query(
      index.constraint === null
        ? `DROP INDEX ${index.index}`
        : `ALTER TABLE ${table} DROP CONSTRAINT ${quote(index.constraint)}`,
    );
    await client.query('RELEASE SAVEPOINT lockstep_drop_index');
    return true;
  } catch (error) {
    // dependent_objects_still_exist: a view or another object needs it.
    if ((error as { code?: string }).code !== '2BP01') throw error;
    await client.query('ROLLBACK TO SAVEPOINT lockstep_drop_index');
    return false;
  }
}

async function rebuildIndexes(
  client: pg.Client,
  table: string,
  dropped: readonly DroppedIndex[],
): Promise<void> {
  for (const index of dropped) {
    // pg_get_indexdef leaves the tablespace out; '' is the database's default, as reltablespace 0.
    await client.query(
      `SET LOCAL default_tablespace = ${index.tablespace ? quote(index.tablespace) : "''"}`,
    );
    await client.query(
      index.constraint === null
        ? index.definition
        : `ALTER TABLE ${table} ADD CONSTRAINT ${quote(index.constraint)} ${index.definition}`,
    );
    if (index.indexComment !== null)
      await client.query(`COMMENT ON INDEX ${index.index} IS ${literal(index.indexComment)}`);
    if (index.constraint !== null && index.constraintComment !== null)
      await client.query(
        `COMMENT ON CONSTRAINT ${quote(index.constraint)} ON ${table} IS ${literal(index.constraintComment)}`,
      );
    for (const [column, target] of index.statistics)
      await client.query(
        `ALTER INDEX ${index.index} ALTER COLUMN ${Number(column)} SET STATISTICS ${Number(target)}`,
      );
    if (index.clustered) await client.query(`ALTER TABLE ${table} CLUSTER ON ${quote(index.name)}`);
  }
}
