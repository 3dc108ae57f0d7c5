import type pg from 'pg';
import { DDL_MESSAGE } from '../../plugin/protocol/index.js';

/** The event trigger that captures DDL on the primary (`twoPhase.captureDdl`). */
export const DDL_EVENT_TRIGGER = 'lockstep_capture_ddl';

/** Set (transaction-local) by `lockstep migrate` on the primary: its DDL reaches replicas through its own round. */
export const MIGRATING_SETTING = 'lockstep.migrating';

/**
 * Installs the capture: at the end of every DDL command on the primary, the
 * command's text and search_path go into the WAL as a transactional
 * `lockstep.ddl` logical message, so the DDL reaches the replicas at its exact
 * place in the stream. Skipped: lockstep's own schema, publications,
 * subscriptions and event triggers (primary-only objects), DDL run by
 * `lockstep migrate`. A query string holding several statements is sent whole
 * with the ordinal of the DDL statement the event is for; the replica runs that
 * one (its DML arrives through the stream as usual).
 */
export async function installDdlCapture(client: pg.ClientBase): Promise<void> {
  await client.query(`
    CREATE OR REPLACE FUNCTION lockstep.capture_ddl() RETURNS event_trigger
    LANGUAGE plpgsql AS $fn$
    DECLARE
      command text := current_query();
      key text := md5(command);
      seen text := coalesce(current_setting('lockstep.ddl_seen', true), '');
      ordinal int;
    BEGIN
      IF current_setting('${MIGRATING_SETTING}', true) = 'on'
         OR tg_tag ~ '^(CREATE|ALTER|DROP) (PUBLICATION|SUBSCRIPTION|EVENT TRIGGER)$' THEN
        RETURN;
      END IF;
      IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
         AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                          WHERE schema_name IS DISTINCT FROM 'lockstep') THEN
        RETURN;
      END IF;
      -- Which DDL statement of its query string this is (a string may hold several).
      ordinal := CASE WHEN split_part(seen, ':', 1) = key THEN split_part(seen, ':', 2)::int + 1 ELSE 1 END;
      PERFORM set_config('lockstep.ddl_seen', key || ':' || ordinal, true);
      PERFORM pg_logical_emit_message(true, '${DDL_MESSAGE}',
        json_build_object('searchPath', current_setting('search_path'), 'command', command,
                          'ordinal', ordinal)::text);
    END
    $fn$`);
  await client.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_EVENT_TRIGGER}`);
  await client.query(
    `CREATE EVENT TRIGGER ${DDL_EVENT_TRIGGER} ON ddl_command_end EXECUTE FUNCTION lockstep.capture_ddl()`,
  );
}

/** Removes the capture (detach, or captureDdl turned off). */
export async function removeDdlCapture(client: pg.ClientBase): Promise<void> {
  await client.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_EVENT_TRIGGER}`);
}
