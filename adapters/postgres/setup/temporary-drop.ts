/** The sql_drop event trigger that tells the DDL capture a DROP removed only temporary objects. */
export const DROP_EVENT_TRIGGER = 'lockstep_note_temporary_drop';

/** The transaction-local setting it notes that in, read and cleared by the capture at ddl_command_end. */
export const TEMPORARY_DROP_SETTING = 'lockstep.temporary_drop';

/** A temporary schema's name: the session's own reads `pg_temp`, another's `pg_temp_N` (pg_ names are reserved). */
export const TEMPORARY_SCHEMA = `'^pg_(toast_)?temp(_[0-9]+)?$'`;

/**
 * Whether a command's object is temporary, or belongs to a temporary
 * relation, read from the catalogs while it still exists (ddl_command_end).
 * Triggers, rules and policies have no schema at all: their relation
 * decides. A replica has none of these objects.
 */
export const TEMPORARY_OBJECT = `
  CREATE OR REPLACE FUNCTION lockstep.temporary_object(classid oid, objid oid, schema_name text) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT coalesce(schema_name ~ ${TEMPORARY_SCHEMA}, false) OR EXISTS (
      SELECT 1 FROM pg_class r WHERE r.relpersistence = 't' AND r.oid = CASE classid
        WHEN 'pg_class'::regclass THEN objid
        WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = objid)
        WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = objid)
        WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = objid)
        WHEN 'pg_constraint'::regclass THEN (SELECT conrelid FROM pg_constraint WHERE oid = objid)
        WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = objid)
        WHEN 'pg_statistic_ext'::regclass THEN (SELECT stxrelid FROM pg_statistic_ext WHERE oid = objid)
      END)
  $fn$`;

/**
 * A DROP reports no commands at ddl_command_end, so the capture cannot see
 * what it dropped; sql_drop, which fires just before, can. An object is
 * temporary by its own schema, or by its relation's (the first of its
 * address names: triggers, rules, policies, constraints, defaults,
 * columns; statistics objects sit in their relation's schema,
 * temporary-reach.ts). A DROP
 * whose dropped objects, cascaded ones too, are all temporary is noted, and
 * the capture keeps it to the session (a replica has no such object: it
 * would halt, or drop one of that name). One that names a temporary object
 * but reaches a permanent one (CASCADE) is refused: kept local the nodes
 * would differ, replicated it would halt every replica. A DROP that
 * dropped nothing fires no sql_drop: the capture clears the note after
 * every command, so none is left over for it (nor one an
 * `ALTER … DROP COLUMN` left).
 */
export const NOTE_TEMPORARY_DROP = `
  CREATE OR REPLACE FUNCTION lockstep.note_temporary_drop() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    named_temporary boolean;
    permanent text;
  BEGIN
    SELECT bool_or(d.original AND d.temporary), min(d.identity) FILTER (WHERE NOT d.temporary)
      INTO named_temporary, permanent
      FROM (SELECT o.original, o.object_type || ' ' || o.object_identity AS identity,
                   o.is_temporary OR coalesce(o.schema_name ~ ${TEMPORARY_SCHEMA}, false)
                   OR (o.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass, 'pg_rewrite'::regclass,
                                     'pg_policy'::regclass, 'pg_attrdef'::regclass)
                       OR o.object_type = 'table constraint')
                      AND coalesce(o.address_names[1] ~ ${TEMPORARY_SCHEMA}, false) AS temporary
              FROM pg_event_trigger_dropped_objects() o) d;
    IF named_temporary AND permanent IS NOT NULL AND tg_tag <> 'DROP OWNED' THEN
      RAISE EXCEPTION 'lockstep: % of a temporary object also drops the permanent %: no replica could run it', tg_tag, permanent
        USING HINT = 'drop the permanent objects in a statement of their own first';
    END IF;
    PERFORM set_config('${TEMPORARY_DROP_SETTING}',
      CASE WHEN named_temporary AND permanent IS NULL THEN 'on' ELSE 'off' END, true);
  END
  $fn$`;
