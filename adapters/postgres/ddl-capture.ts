import type pg from 'pg';
import { CONTROL_QUERY_TIMEOUT_MS } from './connection-url.js';
import { connectNode, endClient } from './node-connection.js';
import { quoteIdent } from './sql-identifier.js';

/** The event trigger that captures DDL on the primary (`twoPhase.captureDdl`). */
export const DDL_EVENT_TRIGGER = 'lockstep_capture_ddl';

/** Set (transaction-local) by `lockstep migrate` on the primary: its DDL reaches replicas through its own round. */
export const MIGRATING_SETTING = 'lockstep.migrating';

/**
 * The event trigger's function. `SECURITY DEFINER`: only its owner,
 * lockstep's role, may write control events, and a function returning
 * `event_trigger` cannot be called by anyone but the trigger. It first reads
 * the caller's search_path and role with fully qualified calls (nothing the
 * caller's search_path could redirect), then runs under `pg_catalog` alone
 * and gives the caller's search_path back at the end. The replicas run the
 * statement as that role, so DDL gets no more done there than on the
 * primary. Skipped: lockstep's own schema, temporary objects, publications,
 * subscriptions and event triggers (primary-only objects), DDL run by
 * `lockstep migrate` (as lockstep's role: another role cannot opt out).
 */
const CAPTURE_DDL = `
  CREATE OR REPLACE FUNCTION lockstep.capture_ddl() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER AS $fn$
  DECLARE
    invoker_path text;
    invoker text;
    command text;
    key text;
    ordinal int;
    event bigint;
  BEGIN
    invoker_path := pg_catalog.current_setting('search_path');
    invoker := pg_catalog.current_setting('role');
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF invoker = 'none' THEN invoker := session_user; END IF;
    -- Only lockstep's own role may say its DDL reaches the replicas through a migration round.
    IF NOT (coalesce(current_setting('${MIGRATING_SETTING}', true), '') = 'on' AND invoker = current_user)
       AND tg_tag !~ '^(CREATE|ALTER|DROP) (PUBLICATION|SUBSCRIPTION|EVENT TRIGGER)$'
       AND (NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
            OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                        WHERE schema_name IS DISTINCT FROM 'lockstep'
                          AND coalesce(schema_name, '') !~ '^pg_temp')) THEN
      command := current_query();
      key := md5(command);
      -- Which DDL statement of its query string this is (a string may hold several).
      ordinal := CASE WHEN split_part(coalesce(current_setting('lockstep.ddl_seen', true), ''), ':', 1) = key
                      THEN split_part(current_setting('lockstep.ddl_seen', true), ':', 2)::int + 1 ELSE 1 END;
      PERFORM set_config('lockstep.ddl_seen', key || ':' || ordinal, true);
      INSERT INTO lockstep.control_events (kind, payload)
        VALUES ('ddl', json_build_object('searchPath', invoker_path, 'command', command,
                                         'ordinal', ordinal, 'role', invoker)::text)
        RETURNING id INTO event;
      DELETE FROM lockstep.control_events WHERE id = event;
    END IF;
    PERFORM pg_catalog.set_config('search_path', invoker_path, true);
  END
  $fn$`;

/**
 * Installs the capture: at the end of every DDL command on the primary, the
 * command's text, search_path and role become a control event, so the DDL
 * reaches the replicas at its exact place in the stream. A query string
 * holding several statements is sent whole with the ordinal of the DDL
 * statement the event is for; the replica runs that one (its DML arrives
 * through the stream as usual). Safe to run again (`lockstep run` does, so an
 * upgraded lockstep's functions are in place); the trigger is never dropped
 * on the way, so no DDL goes uncaptured meanwhile.
 */
export async function installDdlCapture(client: pg.ClientBase): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(CAPTURE_DDL);
    const { rowCount } = await client.query('SELECT 1 FROM pg_event_trigger WHERE evtname = $1', [
      DDL_EVENT_TRIGGER,
    ]);
    if (!rowCount)
      await client.query(
        `CREATE EVENT TRIGGER ${DDL_EVENT_TRIGGER} ON ddl_command_end EXECUTE FUNCTION lockstep.capture_ddl()`,
      );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Removes the capture (detach, or captureDdl turned off). */
export async function removeDdlCapture(client: pg.ClientBase): Promise<void> {
  await client.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_EVENT_TRIGGER}`);
}

/**
 * Writes a control event on lockstep's own connection (a migration's
 * marker): inserted and deleted again, so the stream carries it and the
 * table stays empty. Must run inside the transaction it describes.
 */
export async function recordControlEvent(
  client: pg.ClientBase,
  kind: 'migration',
  payload: string,
): Promise<void> {
  const { rows } = await client.query<{ id: string }>(
    'INSERT INTO lockstep.control_events (kind, payload) VALUES ($1, $2) RETURNING id::text',
    [kind, payload],
  );
  await client.query('DELETE FROM lockstep.control_events WHERE id = $1', [rows[0]?.id]);
}

/**
 * At `lockstep run`: the control-event table joins a publication made by an
 * older lockstep, and the capture's functions are brought up to this
 * version's (a capture left as an older version wrote would send DDL as
 * plain messages, which are now ignored as forged).
 */
export async function refreshControlEvents(
  url: string,
  publication: string,
  captureDdl: boolean,
): Promise<void> {
  const client = await connectNode('primary', url, 'lockstep-setup', CONTROL_QUERY_TIMEOUT_MS);
  try {
    await refreshOn(client, publication, captureDdl);
  } finally {
    await endClient(client);
  }
}

async function refreshOn(
  client: pg.ClientBase,
  publication: string,
  captureDdl: boolean,
): Promise<void> {
  const { rows } = await client.query<{ missing: boolean }>(
    `SELECT NOT EXISTS (SELECT 1 FROM pg_publication_tables
                         WHERE pubname = $1 AND schemaname = 'lockstep' AND tablename = 'control_events') AS missing
      FROM pg_publication WHERE pubname = $1`,
    [publication],
  );
  if (rows[0]?.missing)
    await client.query(
      `ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE lockstep.control_events`,
    );
  if (captureDdl) await installDdlCapture(client);
}
