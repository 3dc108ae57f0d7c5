/** The ddl_command_start event trigger that notes where a GRANT/REVOKE's catalog writes begin. */
export const START_EVENT_TRIGGER = 'lockstep_note_command_start';

/** Capture 6's ddl_command_start trigger and function, dropped on upgrade (statistics now stay in pg_temp). */
export const RETIRED_START_TRIGGER = 'lockstep_note_temporary_statistics';
export const RETIRED_START_FUNCTION = 'lockstep.note_temporary_statistics()';

/** Transaction-local: the last command id of this transaction's writes to the catalogs a GRANT changes. */
const COMMAND_START_SETTING = 'lockstep.command_start_cid';

/** A temporary schema's name: the session's own reads `pg_temp`, another's `pg_temp_N` (pg_ names are reserved). */
const TEMPORARY_SCHEMA = `'^pg_(toast_)?temp(_[0-9]+)?$'`;

/**
 * This transaction's rows in the catalogs a GRANT or REVOKE on a table,
 * column, function, type or schema rewrites (it rewrites the row even when
 * nothing changes), with whether the object is temporary.
 */
const GRANTABLE_ROWS = `
  SELECT r.cmin::text::bigint AS cid, r.relpersistence = 't' AS temporary FROM pg_class r
   WHERE r.xmin = pg_current_xact_id()::xid
  UNION ALL SELECT a.cmin::text::bigint, r.relpersistence = 't' FROM pg_attribute a
    JOIN pg_class r ON r.oid = a.attrelid WHERE a.xmin = pg_current_xact_id()::xid
  UNION ALL SELECT p.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.xmin = pg_current_xact_id()::xid
  UNION ALL SELECT t.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.xmin = pg_current_xact_id()::xid
  UNION ALL SELECT n.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_namespace n
   WHERE n.xmin = pg_current_xact_id()::xid`;

/**
 * GRANT and REVOKE report no object to ddl_command_end. Command ids grow
 * within a transaction, so the rows written after the one noted here are
 * the command's own. Rewritten at every GRANT/REVOKE's start: a role
 * cannot set it beforehand for the capture to read.
 */
export const NOTE_COMMAND_START = `
  CREATE OR REPLACE FUNCTION lockstep.note_command_start() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  BEGIN
    IF tg_tag IN ('GRANT', 'REVOKE') THEN
      PERFORM set_config('${COMMAND_START_SETTING}',
        coalesce((SELECT max(g.cid) FROM (${GRANTABLE_ROWS}) g), -1)::text, true);
    END IF;
  END
  $fn$`;

/** At a GRANT/REVOKE's ddl_command_end: 'temporary', 'permanent' or 'mixed', read from the rows it wrote. */
export const GRANT_REACH = `
  CREATE OR REPLACE FUNCTION lockstep.grant_reach() RETURNS text
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE WHEN bool_or(g.temporary) AND bool_or(NOT g.temporary) THEN 'mixed'
                WHEN bool_or(g.temporary) THEN 'temporary' ELSE 'permanent' END
      FROM (${GRANTABLE_ROWS}) g
     WHERE g.cid > coalesce(nullif(current_setting('${COMMAND_START_SETTING}', true), ''), '-1')::bigint
  $fn$`;

/** Catalogs whose objects a session may create in its temporary schema, for the dependency check. */
const TEMPORARY_REFERENCES = [
  ['pg_class', 'relnamespace'],
  ['pg_type', 'typnamespace'],
  ['pg_proc', 'pronamespace'],
  ['pg_operator', 'oprnamespace'],
  ['pg_collation', 'collnamespace'],
  ['pg_conversion', 'connamespace'],
  ['pg_opclass', 'opcnamespace'],
  ['pg_opfamily', 'opfnamespace'],
  ['pg_ts_config', 'cfgnamespace'],
  ['pg_ts_dict', 'dictnamespace'],
]
  .map(
    ([catalog, schema]) =>
      `SELECT '${catalog}'::regclass, oid FROM ${catalog} WHERE ${schema} = pg_my_temp_schema()`,
  )
  .join(' UNION ALL ');

/**
 * Run after every command but lockstep migrate's, captured or kept local,
 * while the session has a temporary schema: what it leaves behind must not
 * end differently on the primary and the replicas.
 * - A permanent object depending on a temporary one (a column, constraint,
 *   default, view, trigger, policy, cast ...): PostgreSQL drops it with the
 *   temporary object at the session's end, DISCARD TEMP or ON COMMIT DROP,
 *   firing no event trigger: on the primary alone. Refused while one exists,
 *   so the command that makes one is rolled back.
 * - A statistics object is temporary by its relation, but may sit in a
 *   permanent schema (the first of search_path), where a replica has
 *   another of its name: it must sit where its relation does.
 */
export const REFUSE_TEMPORARY_DEPENDENTS = `
  CREATE OR REPLACE FUNCTION lockstep.refuse_temporary_dependents(tag text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    dependent text;
    anchor text;
  BEGIN
    SELECT c.object_identity INTO dependent
      FROM pg_event_trigger_ddl_commands() c
      JOIN pg_statistic_ext s ON s.oid = c.objid JOIN pg_class r ON r.oid = s.stxrelid
     WHERE c.classid = 'pg_statistic_ext'::regclass
       AND (s.stxnamespace = pg_my_temp_schema()) <> (r.relpersistence = 't')
     LIMIT 1;
    IF dependent IS NOT NULL THEN
      RAISE EXCEPTION 'lockstep: % puts statistics object % in a schema its table''s session lifetime does not match: a replica would have a different one', tag, dependent
        USING HINT = 'create statistics on a temporary table in pg_temp (CREATE STATISTICS pg_temp.name ...), and those on a permanent table outside it';
    END IF;
    SELECT o.type || ' ' || o.identity, a.type || ' ' || a.identity INTO dependent, anchor
      FROM pg_depend d
      CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
      CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, d.refobjsubid) a
     WHERE (d.refclassid, d.refobjid) IN (${TEMPORARY_REFERENCES})
       AND NOT lockstep.temporary_object(d.classid, d.objid, o.schema)
     LIMIT 1;
    IF dependent IS NOT NULL THEN
      RAISE EXCEPTION 'lockstep: % leaves the permanent % depending on the temporary %: PostgreSQL would drop it with the temporary object on the primary alone', tag, dependent, anchor
        USING HINT = 'make both permanent, or both temporary; drop the permanent object first if it exists';
    END IF;
  END
  $fn$`;

/** A relation's columns as one string, `,name type` each in order, closed by `,`: one holding another's holds its columns. */
const COLUMNS_OF = (
  rel: string,
) => `(SELECT string_agg(format(',%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), '' ORDER BY a.attnum) || ','
     FROM pg_attribute a WHERE a.attrelid = ${rel} AND a.attnum > 0 AND NOT a.attisdropped)`;

/**
 * Run before a command is captured, while the session has a temporary
 * schema. A replica has no temporary objects: a name meaning one here means
 * the object of that name it hides there, or nothing. Some statements
 * record no dependency on what they read: CREATE TABLE … (LIKE t) is known
 * by holding all of a temporary relation's columns, in order, with the word
 * LIKE in the query (a refusal, never a capture, is decided on that word:
 * without it a one-column temporary table would refuse every permanent
 * table that has the same column); CREATE TABLE
 * … AS, SELECT … INTO and a SQL function's body (checked as it is created)
 * are not known at all, so refused while the session has a temporary
 * relation, type or function they could name.
 */
export const REFUSE_TEMPORARY_NAMES = `
  CREATE OR REPLACE FUNCTION lockstep.refuse_temporary_names(tag text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  BEGIN
    IF EXISTS (SELECT 1 FROM pg_class t JOIN pg_class o ON o.relname = t.relname
                 JOIN pg_namespace n ON n.oid = o.relnamespace
                WHERE t.relnamespace = pg_my_temp_schema() AND o.relnamespace <> t.relnamespace
                  AND n.nspname !~ '^pg_(temp|toast_temp)_')
       OR EXISTS (SELECT 1 FROM pg_type t JOIN pg_type o ON o.typname = t.typname
                    JOIN pg_namespace n ON n.oid = o.typnamespace
                   WHERE t.typnamespace = pg_my_temp_schema() AND o.typnamespace <> t.typnamespace
                     AND n.nspname !~ '^pg_(temp|toast_temp)_') THEN
      RAISE EXCEPTION 'lockstep: % in a session whose temporary table or type hides one of the same name cannot be replicated', tag
        USING HINT = 'drop or rename the temporary object, or run the DDL in a session without it';
    END IF;
    IF tag = 'CREATE TABLE' AND current_query() ~* '\\mlike\\M' AND EXISTS (
         SELECT 1 FROM pg_event_trigger_ddl_commands() c, pg_class s
          WHERE c.classid = 'pg_class'::regclass AND s.relnamespace = pg_my_temp_schema()
            AND s.relkind IN ('r', 'p', 'v', 'f', 'c')
            AND position(${COLUMNS_OF('s.oid')} IN ${COLUMNS_OF('c.objid')}) > 0) THEN
      RAISE EXCEPTION 'lockstep: CREATE TABLE with all the columns of a temporary relation (LIKE) cannot be replicated: a replica has no such relation'
        USING HINT = 'spell the columns out, or run it in a session without temporary tables (DISCARD TEMP first)';
    END IF;
    IF (tag IN ('CREATE TABLE AS', 'SELECT INTO')
        OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c JOIN pg_proc p ON p.oid = c.objid
                    WHERE c.classid = 'pg_proc'::regclass AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')))
       AND (EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = pg_my_temp_schema())
            OR EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = pg_my_temp_schema())
            OR EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = pg_my_temp_schema())) THEN
      RAISE EXCEPTION 'lockstep: % in a session with temporary tables, types or functions cannot be replicated: a replica has none for it to read', tag
        USING HINT = 'run it in a session without temporary objects (DISCARD TEMP first), or with lockstep migrate';
    END IF;
  END
  $fn$`;
