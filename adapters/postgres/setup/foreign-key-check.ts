import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type { PgSyncedTablesStore } from '../control/synced-tables-store.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';
import { checkInheritedKeys } from './inherited-key-check.js';

/** The table's own valid foreign keys (not a partition's copy of its parent's). */
const FOREIGN_KEYS = `
  SELECT conname AS name, pg_get_constraintdef(oid) AS definition,
         obj_description(oid, 'pg_constraint') AS comment
    FROM pg_constraint
   WHERE conrelid = to_regclass($1) AND contype = 'f' AND convalidated
     AND conparentid = 0 AND coninhcount = 0
   ORDER BY conname`;

/**
 * Checks the foreign keys a copy loaded unchecked (the load runs with
 * session_replication_role = replica, as native logical replication does):
 * each is re-added NOT VALID and validated, as pg_restore adds them after the
 * data, in one transaction per table that also records it checked. Run once
 * every table of the replica is in, so a key never meets a parent table
 * still to be copied.
 */
export async function checkCopiedForeignKeys(
  client: pg.Client,
  store: PgSyncedTablesStore,
  stream: string,
  replica: string,
): Promise<void> {
  for (const table of await store.uncheckedForeignKeys(stream)) {
    const qualified = quoteQualified(table.schema, table.name);
    let current = '';
    await client.query('BEGIN');
    try {
      const { rows } = await client.query<{
        name: string;
        definition: string;
        comment: string | null;
      }>(FOREIGN_KEYS, [qualified]);
      for (const fk of rows) {
        current = fk.name;
        const name = quoteIdent(fk.name);
        await client.query(
          `ALTER TABLE ${qualified} DROP CONSTRAINT ${name}, ADD CONSTRAINT ${name} ${fk.definition} NOT VALID`,
        );
        await client.query(`ALTER TABLE ${qualified} VALIDATE CONSTRAINT ${name}`);
        if (fk.comment !== null)
          await client.query(
            `COMMENT ON CONSTRAINT ${name} ON ${qualified} IS '${fk.comment.replace(/'/g, "''")}'`,
          );
      }
      current = '(inherited from a parent)';
      await checkInheritedKeys(client, qualified);
      await store.markForeignKeysChecked(stream, table);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      const e = error as { message?: string; code?: string };
      throw new LockstepError({
        node: replica,
        table: `${table.schema}.${table.name}`,
        sqlState: e.code,
        problem: `checking foreign key ${current} after the copy failed: ${e.message ?? String(error)}`,
        fix: 'make the rows satisfy the key on the replica (or drop the key there) and run lockstep attach again',
        cause: error,
      });
    }
  }
}
