import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type { PgSyncedTablesStore } from '../control/synced-tables-store.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql-identifier.js';
import { checkInheritedKeys } from './inherited-key-check.js';
import {
  END_WHEN_DROPPED_SQL,
  LoadPhaseFrozen,
  type LoadWatch,
  watchPhase,
} from './load-watchdog.js';

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
  watch: LoadWatch,
): Promise<void> {
  const tables = await watchPhase('foreign key check', watch, store.uncheckedForeignKeys(stream));
  for (const table of tables) {
    try {
      // Validating a key scans the table: watched, not timed (a frozen replica drops out).
      await watchPhase(
        'foreign key check',
        watch,
        checkTable(client, store, stream, replica, table),
      );
    } catch (error) {
      if (!(error instanceof LoadPhaseFrozen)) throw error;
      throw new LockstepError({
        node: replica,
        table: `${table.schema}.${table.name}`,
        problem: `the replica ${error.reason} for ${error.boundMs} ms while its foreign keys were checked after the copy (a stopped or frozen server, or a lock held there); the check was dropped, the table is kept unchecked`,
        fix: "check the replica (pg_stat_activity and pg_locks there, the server's state), then run lockstep attach again: it checks the table's keys again; applyTimeoutMs sets how long a replica may not answer",
      });
    }
  }
}

/** One table's keys checked and recorded, in one transaction. */
async function checkTable(
  client: pg.Client,
  store: PgSyncedTablesStore,
  stream: string,
  replica: string,
  table: { schema: string; name: string },
): Promise<void> {
  const qualified = quoteQualified(table.schema, table.name);
  let current = '';
  await client.query('BEGIN');
  try {
    await client.query(END_WHEN_DROPPED_SQL);
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
          `COMMENT ON CONSTRAINT ${name} ON ${qualified} IS ${quoteLiteral(fk.comment)}`,
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
