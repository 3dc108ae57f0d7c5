import type pg from 'pg';
import { quoteIdent } from './sql-identifier.js';

// Not in pg_temp: a transaction that touched temporary objects cannot be prepared. Created,
// used and dropped inside the replica's transaction, so no one else ever sees it.
const RUNNER = 'lockstep.run_captured_ddl(text, text)';

/**
 * Runs a captured DDL statement as `role` inside the open transaction: in a
 * `SECURITY DEFINER` function that `role` owns, because there neither the
 * statement nor any function it calls can leave the role (`SET ROLE` and
 * `RESET ROLE` are refused inside one), and the function's own `SET
 * search_path` gives the session its search_path back afterwards — the
 * captured one never applies to lockstep's own statements.
 */
export async function runAsRole(
  client: pg.ClientBase,
  role: string,
  statement: string,
  searchPath: string,
): Promise<void> {
  await client.query(
    `CREATE FUNCTION ${RUNNER.replace('(text, text)', '(statement text, path text)')} RETURNS void
     LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
     BEGIN
       PERFORM pg_catalog.set_config('search_path', path, true);
       EXECUTE statement;
     END
     $fn$`,
  );
  try {
    await client.query(`ALTER FUNCTION ${RUNNER} OWNER TO ${quoteIdent(role)}`);
    await client.query(`SELECT ${RUNNER.replace('(text, text)', '($1, $2)')}`, [
      statement,
      searchPath,
    ]);
  } finally {
    await client.query(`DROP FUNCTION IF EXISTS ${RUNNER}`).catch(() => undefined);
  }
}
