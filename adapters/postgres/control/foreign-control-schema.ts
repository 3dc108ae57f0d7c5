import type pg from 'pg';
import type { ForeignControlSchema } from '../../../plugin/ports/cluster-setup.js';
import {
  DDL_EVENT_TRIGGER,
  DROP_EVENT_TRIGGER,
  REWRITE_EVENT_TRIGGER,
  START_EVENT_TRIGGER,
} from '../setup/ddl-capture.js';
import { quoteIdent } from '../sql-identifier.js';

/** What to run on the replica instead, for the message that refuses to touch such a schema. */
export const FOREIGN_SCHEMA_FIX =
  "create the replica's tables from a dump without lockstep's schema (pg_dump --schema-only --exclude-schema=lockstep), " +
  `or remove it on the replica: DROP EVENT TRIGGER IF EXISTS ${DDL_EVENT_TRIGGER}; ` +
  `DROP EVENT TRIGGER IF EXISTS ${REWRITE_EVENT_TRIGGER}; DROP EVENT TRIGGER IF EXISTS ${DROP_EVENT_TRIGGER}; ` +
  `DROP EVENT TRIGGER IF EXISTS ${START_EVENT_TRIGGER}; ` +
  'DROP SCHEMA lockstep CASCADE; then run lockstep attach again';

/** Kysely's migration bookkeeping tables, as an SQL list. */
const BOOKKEEPING = `('kysely_migration', 'kysely_migration_lock')`;

/**
 * The node's `lockstep` schema when lockstep did not create it, else null.
 * lockstep creates its schema with its migrations, and the migration history
 * (`lockstep.kysely_migration`) is written in the same transaction as they
 * are: a schema holding objects but no history came from elsewhere — a
 * `pg_dump --schema-only` of the primary carries it, empty. An empty schema,
 * or one holding only the migration bookkeeping (an older lockstep created
 * that before, and apart from, the migrations; one stopped in between left
 * it), is lockstep's own: the next attach completes it.
 */
export async function findForeignControlSchema(
  client: pg.ClientBase,
): Promise<ForeignControlSchema | null> {
  const { rows } = await client.query<{ objects: boolean; history: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_namespace n ON n.oid = d.refobjid
                     WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = 'lockstep'
                       AND NOT (d.classid = 'pg_class'::regclass
                                AND d.objid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace = n.oid
                                                   AND c.relname IN ${BOOKKEEPING}))) AS objects,
            to_regclass('lockstep.kysely_migration') IS NOT NULL AS history`,
  );
  // Only the migration bookkeeping (an older lockstep created it apart from the migrations): its own.
  if (rows[0]?.objects !== true) return null;
  if (rows[0].history) {
    const applied = await client.query('SELECT 1 FROM lockstep.kysely_migration LIMIT 1');
    if ((applied.rowCount ?? 0) > 0) return null;
  }
  const tables = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'lockstep' AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
  );
  const tablesWithRows: string[] = [];
  for (const { name } of tables.rows) {
    // Names come from the catalog, quoted by format('%I.%I').
    const found = await client.query(`SELECT 1 FROM ${name} LIMIT 1`);
    if ((found.rowCount ?? 0) > 0) tablesWithRows.push(name);
  }
  const triggers = await client.query<{ evtname: string }>(
    `SELECT e.evtname FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid
       JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'lockstep' ORDER BY 1`,
  );
  return {
    tablesWithRows,
    eventTriggers: triggers.rows.map((r) => r.evtname),
    fix: FOREIGN_SCHEMA_FIX,
  };
}

/**
 * Removes a foreign `lockstep` schema that holds no rows, in one transaction:
 * the event triggers running its functions, then its tables, then its
 * routines, then the schema — each dropped RESTRICT, so nothing outside it is
 * ever removed. Throws, with nothing dropped, when anything outside depends
 * on it or it holds objects of other kinds.
 */
export async function dropForeignControlSchema(
  client: pg.ClientBase,
  foreign: ForeignControlSchema,
): Promise<void> {
  await client.query('BEGIN');
  try {
    // Routine names below are read qualified (lockstep is never on this path).
    await client.query('SET LOCAL search_path = pg_catalog');
    for (const trigger of foreign.eventTriggers)
      await client.query(`DROP EVENT TRIGGER ${quoteIdent(trigger)}`);
    const tables = await client.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'lockstep' AND c.relkind IN ('r', 'p') AND NOT c.relispartition`,
    );
    if (tables.rows.length > 0)
      await client.query(`DROP TABLE ${tables.rows.map((t) => t.name).join(', ')} RESTRICT`);
    const routines = await client.query<{ name: string }>(
      `SELECT p.oid::regprocedure::text AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'lockstep'`,
    );
    if (routines.rows.length > 0)
      await client.query(`DROP ROUTINE ${routines.rows.map((r) => r.name).join(', ')} RESTRICT`);
    await client.query('DROP SCHEMA lockstep RESTRICT');
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
