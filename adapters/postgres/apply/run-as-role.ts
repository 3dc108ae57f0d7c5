import type pg from 'pg';
import { quoteIdent } from '../sql-identifier.js';

// Not in pg_temp: a transaction that touched temporary objects cannot be prepared. Created,
// used and dropped inside the replica's transaction, so no one else ever sees it.
const RUNNER = 'lockstep.run_captured_ddl(text, text)';

/** The session settings a DDL statement's result depends on, as the primary had them. */
export interface CapturedSettings {
  readonly search_path: string;
  readonly TimeZone?: string;
  readonly DateStyle?: string;
  readonly IntervalStyle?: string;
  /** How the statement's plain string literals read (backslashes escape when off). */
  readonly standard_conforming_strings?: string;
}

/** Only these settings may be set (the payload is lockstep's, but a setting list is no place for surprises). */
function onlyKnown(settings: CapturedSettings): Record<string, string> {
  const known: Record<string, string> = { search_path: settings.search_path };
  for (const key of [
    'TimeZone',
    'DateStyle',
    'IntervalStyle',
    'standard_conforming_strings',
  ] as const) {
    const value = settings[key];
    if (typeof value === 'string') known[key] = value;
  }
  return known;
}

/**
 * Runs a captured DDL statement as `role` inside the open transaction: in a
 * `SECURITY DEFINER` function that `role` owns, because there neither the
 * statement nor any function it calls can leave the role (`SET ROLE` and
 * `RESET ROLE` are refused inside one). It runs with the primary's
 * search_path, TimeZone, DateStyle, IntervalStyle (a type change to
 * timestamptz converts by TimeZone) and standard_conforming_strings, which the function's SET clauses give
 * back afterwards — they never apply to lockstep's own statements.
 */
export async function runAsRole(
  client: pg.ClientBase,
  role: string,
  statement: string,
  settings: CapturedSettings,
): Promise<void> {
  // The SET clauses make every setting the body changes revert when it returns.
  await client.query(
    `CREATE FUNCTION ${RUNNER.replace('(text, text)', '(statement text, settings text)')} RETURNS void
     LANGUAGE plpgsql SECURITY DEFINER
     SET search_path = pg_catalog SET timezone = 'UTC' SET datestyle = 'ISO'
     SET intervalstyle = 'postgres' SET standard_conforming_strings = on AS $fn$
     DECLARE
       setting record;
     BEGIN
       FOR setting IN SELECT key, value FROM pg_catalog.json_each_text(settings::pg_catalog.json) LOOP
         PERFORM pg_catalog.set_config(setting.key, setting.value, true);
       END LOOP;
       EXECUTE statement;
     END
     $fn$`,
  );
  try {
    await client.query(`ALTER FUNCTION ${RUNNER} OWNER TO ${quoteIdent(role)}`);
    await client.query(`SELECT ${RUNNER.replace('(text, text)', '($1, $2)')}`, [
      statement,
      JSON.stringify(onlyKnown(settings)),
    ]);
  } finally {
    await client.query(`DROP FUNCTION IF EXISTS ${RUNNER}`).catch(() => undefined);
  }
}
