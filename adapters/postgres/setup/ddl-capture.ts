import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../connection/connection-url.js';
import { connectBounded, endClient, lockWaitWithin } from '../connection/node-connection.js';
import { quoteIdent } from '../sql-identifier.js';
import { REFUSE_UNREPLICABLE } from './refuse-unreplicable.js';
import {
  DROP_EVENT_TRIGGER,
  NOTE_TEMPORARY_DROP,
  TEMPORARY_DROP_SETTING,
  TEMPORARY_OBJECT,
} from './temporary-drop.js';
import {
  GRANT_REACH,
  NOTE_COMMAND_START,
  OWN_XID,
  REFUSE_TEMPORARY_DEPENDENTS,
  REFUSE_TEMPORARY_NAMES,
  RETIRED_START_FUNCTION,
  RETIRED_START_TRIGGER,
  START_EVENT_TRIGGER,
} from './temporary-reach.js';
import { requireTrustedOwners } from './trusted-owners.js';
import { REFUSE_VOLATILE_REWRITE, REWRITE_EVENT_TRIGGER } from './volatile-rewrite.js';

export { DROP_EVENT_TRIGGER } from './temporary-drop.js';
export { START_EVENT_TRIGGER } from './temporary-reach.js';
export { REWRITE_EVENT_TRIGGER } from './volatile-rewrite.js';

/** The event trigger that captures DDL on the primary (`twoPhase.captureDdl`). */
export const DDL_EVENT_TRIGGER = 'lockstep_capture_ddl';

/** Set (transaction-local) by `lockstep migrate` on the primary: its DDL reaches replicas through its own round. */
export const MIGRATING_SETTING = 'lockstep.migrating';

/** Names this version of the capture's functions: `lockstep run` reinstalls them when it differs. */
const CAPTURE_VERSION = 'lockstep capture 8 (no temporary object of any session is depended on)';

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
  -- ${CAPTURE_VERSION}
  DECLARE
    invoker_path text;
    invoker text;
    command text;
    key text;
    ordinal int;
    event bigint;
    stack text;
    nested boolean;
    temporary_drop boolean;
    grant_reach text;
  BEGIN
    invoker_path := pg_catalog.current_setting('search_path');
    invoker := pg_catalog.current_setting('role');
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF invoker = 'none' THEN invoker := session_user; END IF;
    -- Only lockstep's own role may say its DDL reaches the replicas through a migration round.
    IF NOT (coalesce(current_setting('${MIGRATING_SETTING}', true), '') = 'on' AND invoker = current_user)
       AND tg_tag !~ '^(CREATE|ALTER|DROP) (PUBLICATION|SUBSCRIPTION|EVENT TRIGGER)$'
       -- The commands of an extension's script: the CREATE/ALTER EXTENSION itself is the statement.
       AND (NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
            OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE NOT in_extension)) THEN
      command := current_query();
      -- A DDL command inside a function, procedure or DO block has callers on the stack; the
      -- query string holds no such statement a replica could run (it would wedge the stream),
      -- and the replica does not count it.
      GET DIAGNOSTICS stack = PG_CONTEXT;
      nested := position(chr(10) IN stack) > 0;
      -- Which DDL statement of its query string this is (a string may hold several), counted
      -- for every top-level DDL statement, skipped ones too, as the replica counts them. Keyed
      -- by the text and the send (statement_timestamp() is set once per query message), so
      -- the same string sent again in one transaction counts from 1 again (no ':' in the key).
      key := md5(command) || '/' || (extract(epoch FROM statement_timestamp()) * 1000000)::bigint;
      ordinal := CASE WHEN split_part(coalesce(current_setting('lockstep.ddl_seen', true), ''), ':', 1) = key
                      THEN split_part(current_setting('lockstep.ddl_seen', true), ':', 2)::int + 1 ELSE 1 END;
      IF NOT nested THEN
        PERFORM set_config('lockstep.ddl_seen', key || ':' || ordinal, true);
      END IF;
      -- A DROP of temporary objects only, as sql_drop noted just before (temporary-drop.ts).
      -- (DROP OWNED may drop nothing and only revoke: never taken for temporary.) The note is
      -- cleared after every command, so one an ALTER … DROP COLUMN left is read by no DROP.
      temporary_drop := tg_tag LIKE 'DROP %' AND tg_tag <> 'DROP OWNED'
                        AND coalesce(current_setting('${TEMPORARY_DROP_SETTING}', true), '') = 'on';
      PERFORM set_config('${TEMPORARY_DROP_SETTING}', '', true);
      -- GRANT/REVOKE report no object: the catalog rows they wrote decide (temporary-reach.ts).
      -- None found: captured (a no-op replays as one), refused beside temporary relations.
      grant_reach := CASE WHEN tg_tag IN ('GRANT', 'REVOKE') THEN lockstep.grant_reach() END;
      IF grant_reach = 'none' AND EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = pg_my_temp_schema()) THEN
        RAISE EXCEPTION 'lockstep: % changed no catalog row lockstep could read in a session with temporary relations: it cannot tell whether it names one', tg_tag
          USING HINT = 'run it in a session without temporary relations (DISCARD TEMP first)';
      END IF;
      -- Captured or kept local: nothing permanent may be left depending on a temporary object.
      -- Any session's temporary objects: a regclass literal reaches another session's too.
      PERFORM lockstep.refuse_temporary_dependents(tg_tag);
      -- Objects of temporary relations too (triggers, rules, policies, statistics: temporary-drop.ts).
      IF NOT temporary_drop AND coalesce(grant_reach, '') <> 'temporary'
         AND (NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
              OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
                          WHERE c.schema_name IS DISTINCT FROM 'lockstep'
                            AND NOT lockstep.temporary_object(c.classid, c.objid, c.schema_name))) THEN
        -- Captured, its temporary objects would halt every replica; kept local, the nodes would differ.
        IF grant_reach = 'mixed' OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
                    WHERE lockstep.temporary_object(c.classid, c.objid, c.schema_name)) THEN
          RAISE EXCEPTION 'lockstep: % changes both temporary and permanent objects: no replica could run it', tg_tag
            USING HINT = 'change the temporary and the permanent objects in separate statements';
        END IF;
        IF nested THEN
          RAISE EXCEPTION 'lockstep: % inside a function, procedure or DO block cannot be replicated by the DDL capture', tg_tag
            USING HINT = 'run it with lockstep migrate or lockstep exec, or as plain statements';
        END IF;
        -- A SQL-standard body (BEGIN ATOMIC, RETURN) is cut by the grammar, not the scanner: a
        -- replica could not be sure which statements of the string it holds.
        IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c JOIN pg_proc p ON p.oid = c.objid
                    WHERE c.classid = 'pg_proc'::regclass AND p.prosqlbody IS NOT NULL)
           AND tg_tag IN ('CREATE FUNCTION', 'CREATE PROCEDURE') THEN
          RAISE EXCEPTION 'lockstep: % with a SQL-standard body (BEGIN ATOMIC or RETURN) cannot be replicated by the DDL capture', tg_tag
            USING HINT = 'write the body as a string (AS $$ ... $$), or run it with lockstep migrate or lockstep exec';
        END IF;
        PERFORM lockstep.refuse_unreplicable_ddl(invoker, tg_tag);
        -- A replica finds this statement by lexing the query string. Its backslashes read by
        -- a setting that is off, or that the string itself changes, it could not be sure to
        -- read it as here (it would halt): refused here instead. chr(92): the body must lex
        -- alike whatever the setting of the session that compiles it.
        IF position(chr(92) IN command) > 0
           AND (current_setting('standard_conforming_strings') = 'off'
                OR command ~* 'standard_conforming_strings') THEN
          RAISE EXCEPTION 'lockstep: % with a backslash in its query string cannot be replicated while standard_conforming_strings is off or set in that string', tg_tag
            USING HINT = 'keep standard_conforming_strings on (the default), set it in a query string of its own, and write backslashes in E'''' strings';
        END IF;
        -- A name meaning a temporary object here means another object, or none, there.
        IF pg_my_temp_schema() <> 0 THEN
          PERFORM lockstep.refuse_temporary_names(tg_tag);
        END IF;
        INSERT INTO lockstep.control_events (kind, payload)
          VALUES ('ddl', json_build_object('searchPath', invoker_path, 'command', command,
                                           'ordinal', ordinal, 'role', invoker, 'tag', tg_tag,
                                           'settings', json_build_object(
                                             'TimeZone', current_setting('TimeZone'),
                                             'DateStyle', current_setting('DateStyle'),
                                             'IntervalStyle', current_setting('IntervalStyle'),
                                             -- How the replica lexes the query string and reads its literals.
                                             'standard_conforming_strings',
                                             current_setting('standard_conforming_strings')))::text)
          RETURNING id INTO event;
        DELETE FROM lockstep.control_events WHERE id = event;
      END IF;
    END IF;
    PERFORM pg_catalog.set_config('search_path', invoker_path, true);
  END
  $fn$`;

/** The capture's event triggers: name, event, function. */
const EVENT_TRIGGERS = [
  [DDL_EVENT_TRIGGER, 'ddl_command_end', 'lockstep.capture_ddl'],
  [DROP_EVENT_TRIGGER, 'sql_drop', 'lockstep.note_temporary_drop'],
  [START_EVENT_TRIGGER, 'ddl_command_start', 'lockstep.note_command_start'],
  [REWRITE_EVENT_TRIGGER, 'table_rewrite', 'lockstep.refuse_volatile_rewrite'],
] as const;

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
    await client.query(REFUSE_UNREPLICABLE);
    // Before the capture that calls it: the new capture fires for the commands that follow.
    await client.query(TEMPORARY_OBJECT);
    await client.query(OWN_XID);
    await client.query(GRANT_REACH);
    await client.query(REFUSE_TEMPORARY_DEPENDENTS);
    await client.query(REFUSE_TEMPORARY_NAMES);
    await client.query(CAPTURE_DDL);
    await client.query(REFUSE_VOLATILE_REWRITE);
    await client.query(NOTE_TEMPORARY_DROP);
    await client.query(NOTE_COMMAND_START);
    const { rows } = await client.query<{ evtname: string }>(
      'SELECT evtname FROM pg_event_trigger WHERE evtname = ANY($1::text[])',
      [EVENT_TRIGGERS.map(([name]) => name)],
    );
    const present = new Set(rows.map((r) => r.evtname));
    for (const [name, event, fn] of EVENT_TRIGGERS)
      if (!present.has(name))
        await client.query(`CREATE EVENT TRIGGER ${name} ON ${event} EXECUTE FUNCTION ${fn}()`);
    await retireStartTrigger(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Capture 6's statistics note, replaced by the command-start note. Its
 * DROP FUNCTION would be captured like any DROP: the capture is disabled
 * for it inside the install's transaction, which no other session sees.
 */
async function retireStartTrigger(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ present: boolean }>(
    'SELECT to_regprocedure($1) IS NOT NULL AS present',
    [RETIRED_START_FUNCTION],
  );
  await client.query(`DROP EVENT TRIGGER IF EXISTS ${RETIRED_START_TRIGGER}`);
  if (!rows[0]?.present) return;
  // The capture's trigger exists here: installDdlCapture created it just before if absent.
  await client.query(`ALTER EVENT TRIGGER ${DDL_EVENT_TRIGGER} DISABLE`);
  await client.query(`DROP FUNCTION ${RETIRED_START_FUNCTION}`);
  await client.query(`ALTER EVENT TRIGGER ${DDL_EVENT_TRIGGER} ENABLE`);
}

/** Removes the capture (detach, or captureDdl turned off). */
export async function removeDdlCapture(client: pg.ClientBase): Promise<void> {
  for (const [name] of EVENT_TRIGGERS) await client.query(`DROP EVENT TRIGGER IF EXISTS ${name}`);
  await client.query(`DROP EVENT TRIGGER IF EXISTS ${RETIRED_START_TRIGGER}`);
}

/**
 * Writes a control event on lockstep's own connection (a migration's
 * marker): inserted and deleted again, so the stream carries it and the
 * table stays empty. Must run inside the transaction it describes.
 */
export async function recordControlEvent(
  client: pg.ClientBase,
  kind: 'migration' | 'migration-work',
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
  /** The stream whose recorded captureDdl must agree (the one attach set up). */
  stream?: string,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<void> {
  // Bounded: reading the publication's tables (from PostgreSQL 16 it opens each) or altering
  // it waits behind a table's ACCESS EXCLUSIVE (an in-doubt migration): named, never orphaned.
  const client = await connectBounded(
    'primary',
    url,
    'lockstep-setup',
    queryTimeoutMs,
    lockWaitWithin(queryTimeoutMs),
  );
  try {
    if (stream !== undefined) await requireAttachedCapture(client, stream, captureDdl);
    await refreshOn(client, publication, captureDdl);
  } finally {
    await endClient(client);
  }
}

/**
 * A sidecar whose captureDdl differs from the one the stream was attached
 * with would install (or leave out) the capture under a running stream:
 * what every replica receives would change with whichever sidecar runs.
 */
async function requireAttachedCapture(
  client: pg.ClientBase,
  stream: string,
  captureDdl: boolean,
): Promise<void> {
  const { rows } = await client.query<{ capture: boolean | null }>(
    'SELECT capture_ddl AS capture FROM lockstep.streams WHERE stream = $1',
    [stream],
  );
  const recorded = rows[0]?.capture;
  if (recorded === undefined || recorded === null || recorded === captureDdl) return;
  throw new LockstepError({
    node: 'primary',
    setting: 'twoPhase.captureDdl',
    problem: `this configuration has twoPhase.captureDdl ${captureDdl}, the stream "${stream}" was attached with ${recorded}: nothing streams`,
    fix: `run lockstep run with the configuration the stream was attached with (captureDdl: ${recorded}), or lockstep detach and attach again to change it`,
  });
}

async function refreshOn(
  client: pg.ClientBase,
  publication: string,
  captureDdl: boolean,
): Promise<void> {
  await requireTrustedOwners(client);
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
  if (captureDdl && !(await captureIsCurrent(client))) {
    // An older capture would send DDL as plain messages, which replicas now ignore as forged.
    await installDdlCapture(client).catch((error: Error) => {
      throw new LockstepError({
        node: 'primary',
        setting: 'twoPhase.captureDdl',
        problem: `the DDL capture on the primary is from an older lockstep and cannot be updated: ${error.message}`,
        fix: 'run lockstep attach as the role that installed it (a superuser), then start lockstep run again',
        cause: error,
      });
    });
  }
}

/** Whether this version's capture functions and all its event triggers are installed. */
async function captureIsCurrent(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ current: boolean }>(
    `SELECT coalesce((SELECT prosrc LIKE '%' || $1 || '%' FROM pg_proc
                       WHERE oid = to_regprocedure('lockstep.capture_ddl()')), false)
            AND (SELECT count(*) FROM pg_event_trigger WHERE evtname = ANY($2::text[])) = $3 AS current`,
    [CAPTURE_VERSION, EVENT_TRIGGERS.map(([name]) => name), EVENT_TRIGGERS.length],
  );
  return rows[0]?.current === true;
}
