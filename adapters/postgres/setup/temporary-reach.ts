import { TEMPORARY_SCHEMA } from './temporary-drop.js';

/** The ddl_command_start event trigger that notes where a GRANT/REVOKE's catalog writes begin. */
export const START_EVENT_TRIGGER = 'lockstep_note_command_start';

/** Capture 6's ddl_command_start trigger and function, dropped on upgrade (statistics now stay in pg_temp). */
export const RETIRED_START_TRIGGER = 'lockstep_note_temporary_statistics';
export const RETIRED_START_FUNCTION = 'lockstep.note_temporary_statistics()';

/** Transaction-local: the last command id of this transaction's writes to the catalogs a GRANT changes. */
const COMMAND_START_SETTING = 'lockstep.command_start_cid';

/**
 * Whether a catalog row's xmin is an xid of this transaction, its
 * subtransactions' too (a SAVEPOINT, as psql ON_ERROR_ROLLBACK, pgjdbc
 * autosave or Django atomic make, gives the GRANT's rows a subxact's xid).
 * Such an xid is at or after the top-level one: widened to 64 bits from it.
 * Below the snapshot's xmax pg_xact_status is safe to ask and "in
 * progress" is ours (another transaction's uncommitted rows are not
 * visible). At or past it pg_xact_status may refuse the xid as in the
 * future: a visible row there is ours, or a frozen one whose raw xmin lies
 * in the cycle's later half (an old database has many; each made every
 * GRANT fail before). Those are read as ours too: read at the command's
 * start as well, they only raise the noted command id and never count as
 * the command's own writes; at worst its own rows fall under the note, it
 * reads 'none', and the capture fails closed (GRANT_REACH).
 */
export const OWN_XID = `
  CREATE OR REPLACE FUNCTION lockstep.own_xid(x xid) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT x::text::bigint >= 3 AND d.distance < 2147483648
           AND (d.top + d.distance >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                OR pg_xact_status((d.top + d.distance)::text::xid8) = 'in progress')
      FROM (SELECT t.top, (x::text::bigint - (t.top % 4294967296) + 4294967296) % 4294967296 AS distance
              FROM (SELECT pg_current_xact_id()::text::bigint AS top) t) d
  $fn$`;

/** Rows of catalogs holding no temporary objects that a GRANT or REVOKE rewrites. */
const PERMANENT_GRANTABLES = [
  'pg_largeobject_metadata',
  'pg_foreign_server',
  'pg_foreign_data_wrapper',
  'pg_language',
]
  .map(
    (catalog) => `
  UNION ALL SELECT x.cmin::text::bigint, false FROM ${catalog} x WHERE age(x.xmin) <= 0 AND lockstep.own_xid(x.xmin)`,
  )
  .join('');

/**
 * This transaction's rows in the catalogs a GRANT or REVOKE on a table,
 * column, function, type, schema, large object, foreign server or wrapper
 * or language rewrites (a table's row even when nothing changes; a
 * column's only when its ACL does), with whether the object is temporary.
 * Databases, tablespaces and parameters fire no event trigger. `age(xmin)
 * <= 0` first, cheaply: age counts from this transaction's xid (or the next
 * xid when first asked, before it had one), so its own xids are never older.
 */
const GRANTABLE_ROWS = `
  SELECT r.cmin::text::bigint AS cid, r.relpersistence = 't' AS temporary FROM pg_class r
   WHERE age(r.xmin) <= 0 AND lockstep.own_xid(r.xmin)
  UNION ALL SELECT a.cmin::text::bigint, r.relpersistence = 't' FROM pg_attribute a
    JOIN pg_class r ON r.oid = a.attrelid WHERE age(a.xmin) <= 0 AND lockstep.own_xid(a.xmin)
  UNION ALL SELECT p.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE age(p.xmin) <= 0 AND lockstep.own_xid(p.xmin)
  UNION ALL SELECT t.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace WHERE age(t.xmin) <= 0 AND lockstep.own_xid(t.xmin)
  UNION ALL SELECT n.cmin::text::bigint, n.nspname ~ ${TEMPORARY_SCHEMA} FROM pg_namespace n
   WHERE age(n.xmin) <= 0 AND lockstep.own_xid(n.xmin)${PERMANENT_GRANTABLES}`;

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

/**
 * At a GRANT/REVOKE's ddl_command_end: 'temporary', 'permanent' or 'mixed',
 * read from the rows it wrote; 'none' when none is found (a no-op, as a
 * REVOKE of a column privilege never granted, or a frozen row aliasing an
 * xid of ours that moved the noted command id): the capture then fails
 * closed, capturing it, or refusing it while the session has temporary
 * relations (a replica could not run it on one).
 */
export const GRANT_REACH = `
  CREATE OR REPLACE FUNCTION lockstep.grant_reach() RETURNS text
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE WHEN count(*) = 0 THEN 'none'
                WHEN bool_or(g.temporary) AND bool_or(NOT g.temporary) THEN 'mixed'
                WHEN bool_or(g.temporary) THEN 'temporary' ELSE 'permanent' END
      FROM (${GRANTABLE_ROWS}) g
     WHERE g.cid > coalesce(nullif(current_setting('${COMMAND_START_SETTING}', true), ''), '-1')::bigint
  $fn$`;

/** Catalogs whose objects a session may create in its temporary schema, with their schema column. */
const TEMPORARY_KINDS = [
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
] as const;

/**
 * Every session's temporary objects, `schemas` the temporary schemas' oids,
 * read through pg_depend's index on the referenced object, never by
 * scanning the catalogs (their schema columns have no index): what sits
 * in a schema depends on it, and what does not (a table's row type, array
 * types, indexes, its toast table and their indexes) belongs to such an
 * object, internally or automatically, within three steps.
 */
const TEMPORARY_OBJECTS = (schemas: string) => `
  WITH RECURSIVE t(classid, oid, depth) AS (
    SELECT d.classid, d.objid, 1 FROM pg_depend d
     WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = ANY(${schemas})
    UNION
    SELECT d.classid, d.objid, t.depth + 1 FROM t
      JOIN pg_depend d ON d.refclassid = t.classid AND d.refobjid = t.oid
     WHERE d.deptype IN ('i', 'a') AND t.depth < 4)
  SELECT DISTINCT classid, oid FROM t`;

/** Whether the session has temporary objects of any kind (the current session's only). */
const SESSION_HAS_TEMPORARY_OBJECTS = TEMPORARY_KINDS.map(
  ([catalog, schema]) => `EXISTS (SELECT 1 FROM ${catalog} WHERE ${schema} = pg_my_temp_schema())`,
).join(' OR ');

/**
 * Run after every command but lockstep migrate's, captured or kept local:
 * what it leaves behind must not end differently on the primary and the
 * replicas.
 * - A permanent object depending on a temporary one, this session's or
 *   another's (a column, constraint, default, view, trigger, policy, cast
 *   ...; a regclass literal names any session's relation): PostgreSQL drops
 *   it with the temporary object at that session's end, DISCARD TEMP or ON
 *   COMMIT DROP, firing no event trigger: on the primary alone. Refused
 *   while one exists, so the command that makes one is rolled back. Cheap
 *   enough for every DDL: only pg_depend is read, by its index.
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
    schemas oid[];
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
    schemas := ARRAY(SELECT oid FROM pg_namespace WHERE nspname ~ '^pg_(toast_)?temp_[0-9]+$');
    SELECT o.type || ' ' || o.identity, a.type || ' ' || a.identity INTO dependent, anchor
      FROM (${TEMPORARY_OBJECTS('schemas')}) t
      JOIN pg_depend d ON d.refclassid = t.classid AND d.refobjid = t.oid
      CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
      CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, d.refobjsubid) a
     WHERE NOT lockstep.temporary_object(d.classid, d.objid, o.schema)
     LIMIT 1;
    IF dependent IS NOT NULL THEN
      RAISE EXCEPTION 'lockstep: % leaves the permanent % depending on the temporary %: PostgreSQL would drop it with the temporary object on the primary alone', tag, dependent, anchor
        USING HINT = 'make both permanent, or both temporary; drop the permanent object first if it exists (it may be another session''s temporary object)';
    END IF;
  END
  $fn$`;

/** A relation's columns as one string, `,name type` each in order, closed by `,`: one holding another's holds its columns. */
const COLUMNS_OF = (
  rel: string,
) => `(SELECT string_agg(format(',%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), '' ORDER BY a.attnum) || ','
     FROM pg_attribute a WHERE a.attrelid = ${rel} AND a.attnum > 0 AND NOT a.attisdropped)`;

/** An identifier, plain or quoted, in a regular expression free of backslashes (they lex by a setting). */
const IDENTIFIER = `(?:"(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)`;

/** `LIKE name` or `LIKE schema.name`, the name captured, whole (no identifier character, dot or & after it). */
const LIKE_NAME = `[[:<:]]like[[:space:]]+(${IDENTIFIER}(?:[[:space:]]*[.][[:space:]]*${IDENTIFIER})?)(?![[:alnum:]_$".&])`;

/** `LIKE` followed by a string literal or a parameter: a pattern match, no relation. */
const LIKE_PATTERN = `[[:<:]]like[[:space:]]+(e|u&)?[''$]`;

/**
 * Run before a command is captured, while the session has a temporary
 * schema. A replica has no temporary objects: a name meaning one here means
 * the object of that name it hides there, or nothing. Some statements
 * record no dependency on what they read:
 * - CREATE TABLE … (LIKE t): every `LIKE name` in the query whose name is a
 *   temporary relation refuses it. Text may only refuse, never let DDL
 *   through: a LIKE followed by anything else than a name or a pattern (a
 *   comment, U&"…") falls back to refusing a table holding all of a
 *   temporary relation's columns, in order.
 * - CREATE TABLE … AS, SELECT … INTO and a SQL function's body (checked as
 *   it is created) are not known at all, so refused while the session has
 *   any temporary object they could name.
 */
export const REFUSE_TEMPORARY_NAMES = `
  CREATE OR REPLACE FUNCTION lockstep.refuse_temporary_names(tag text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    query text := current_query();
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
    IF tag = 'CREATE TABLE' AND (
         EXISTS (SELECT 1 FROM regexp_matches(query, '${LIKE_NAME}', 'gi') m
                   JOIN pg_class r ON r.oid = to_regclass(m[1]) WHERE r.relpersistence = 't')
         OR (SELECT count(*) FROM regexp_matches(query, '[[:<:]]like[[:>:]]', 'gi'))
            > (SELECT count(*) FROM regexp_matches(query, '${LIKE_NAME}', 'gi'))
              + (SELECT count(*) FROM regexp_matches(query, '${LIKE_PATTERN}', 'gi'))
            AND EXISTS (
              SELECT 1 FROM pg_event_trigger_ddl_commands() c, pg_class s
               WHERE c.classid = 'pg_class'::regclass AND s.relnamespace = pg_my_temp_schema()
                 AND s.relkind IN ('r', 'p', 'v', 'f', 'c')
                 AND position(${COLUMNS_OF('s.oid')} IN ${COLUMNS_OF('c.objid')}) > 0)) THEN
      RAISE EXCEPTION 'lockstep: CREATE TABLE LIKE a temporary relation cannot be replicated: a replica has no such relation'
        USING HINT = 'spell the columns out, or run it in a session without temporary tables (DISCARD TEMP first)';
    END IF;
    IF (tag IN ('CREATE TABLE AS', 'SELECT INTO')
        OR tag IN ('CREATE FUNCTION', 'CREATE PROCEDURE') AND EXISTS (
             SELECT 1 FROM pg_event_trigger_ddl_commands() c JOIN pg_proc p ON p.oid = c.objid
              WHERE c.classid = 'pg_proc'::regclass AND NOT c.in_extension
                AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')))
       AND (${SESSION_HAS_TEMPORARY_OBJECTS}) THEN
      RAISE EXCEPTION 'lockstep: % in a session with temporary objects cannot be replicated: a replica has none for it to read', tag
        USING HINT = 'run it in a session without temporary objects (DISCARD TEMP first), or with lockstep migrate';
    END IF;
  END
  $fn$`;
