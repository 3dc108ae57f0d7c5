/**
 * DDL no replica could run identically or safely, refused on the primary
 * with the alternative. Runs inside the capture (as lockstep's role, with
 * search_path pg_catalog). A role that is not a superuser may not make a
 * replicated table call code it can change: on the replicas that code runs
 * as lockstep's role for every applied row (triggers enabled ALWAYS or
 * REPLICA, rules, and constraints, defaults and indexes over its functions).
 */
export const REFUSE_UNREPLICABLE = `
  CREATE OR REPLACE FUNCTION lockstep.refuse_unreplicable_ddl(invoker name, tag text) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    rel oid;
    has_rows boolean;
    found text;
  BEGIN
    -- Its rows stream to the replicas too: running it there would copy them twice.
    IF tag IN ('CREATE TABLE AS', 'SELECT INTO') AND EXISTS (
         SELECT 1 FROM pg_event_trigger_ddl_commands() c JOIN pg_publication_tables p
           ON c.object_identity = format('%I.%I', p.schemaname, p.tablename)) THEN
      RAISE EXCEPTION 'lockstep: % into a replicated table cannot be replicated by the DDL capture', tag
        USING HINT = 'create the table first, then fill it with INSERT ... SELECT (its rows stream)';
    END IF;
    IF NOT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = invoker), false) THEN
      IF EXISTS (
           SELECT 1 FROM pg_event_trigger_ddl_commands() c
             JOIN pg_trigger t ON t.tgrelid = c.objid AND NOT t.tgisinternal AND t.tgenabled IN ('A', 'R')
            WHERE c.classid = 'pg_class'::regclass
           UNION ALL
           SELECT 1 FROM pg_event_trigger_ddl_commands() c
             JOIN pg_rewrite r ON r.ev_class = c.objid AND r.ev_enabled IN ('A', 'R')
            WHERE c.classid = 'pg_class'::regclass) THEN
        RAISE EXCEPTION 'lockstep: a trigger or rule enabled ALWAYS or REPLICA would fire on the replicas as lockstep''s role'
          USING HINT = 'only a superuser may enable one on a replicated table with the DDL capture on';
      END IF;
      SELECT f.oid::regprocedure::text INTO found
        FROM pg_publication_tables p
        JOIN pg_namespace n ON n.nspname = p.schemaname
        JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = p.tablename
        JOIN LATERAL (
          SELECT 'pg_class'::regclass AS classid, t.oid AS objid
          UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.conrelid = t.oid
          UNION ALL SELECT 'pg_attrdef'::regclass, d.oid FROM pg_attrdef d WHERE d.adrelid = t.oid
          UNION ALL SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index i WHERE i.indrelid = t.oid
          UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_attribute a
                      JOIN pg_constraint k ON k.contypid = a.atttypid
                     WHERE a.attrelid = t.oid AND a.attnum > 0) o ON true
        JOIN pg_depend dep ON dep.classid = o.classid AND dep.objid = o.objid
                          AND dep.refclassid = 'pg_proc'::regclass
        JOIN pg_proc f ON f.oid = dep.refobjid
       WHERE pg_has_role(invoker, f.proowner, 'MEMBER')
         AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = f.proowner)
       LIMIT 1;
      IF found IS NOT NULL THEN
        RAISE EXCEPTION 'lockstep: a replicated table''s constraint, default, index or type calls %, which role % can change: on the replicas it runs as lockstep''s role', found, invoker
          USING HINT = 'give the function to a superuser (ALTER FUNCTION ... OWNER TO ...), or change the schema with lockstep migrate';
      END IF;
    END IF;
    -- A column added now whose default is computed once per node (now(), current_user, ...).
    IF tag = 'ALTER TABLE' THEN
      FOR rel IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
                  WHERE c.classid = 'pg_class'::regclass LOOP
        IF EXISTS (
             SELECT 1 FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = rel AND a.atthasmissing
                AND a.xmin::text::bigint >= pg_current_xact_id()::xid::text::bigint
                AND (d.adbin::text ~ '[{]SQLVALUEFUNCTION' OR EXISTS (
                       SELECT 1 FROM regexp_matches(d.adbin::text, ':(?:op)?funcid ([0-9]+)', 'g') m
                         JOIN pg_proc f ON f.oid = m[1]::oid WHERE f.provolatile <> 'i')))
           AND EXISTS (SELECT 1 FROM pg_publication_tables p JOIN pg_namespace n ON n.nspname = p.schemaname
                         JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = p.tablename WHERE t.oid = rel) THEN
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', rel::regclass) INTO has_rows;
          IF has_rows THEN
            RAISE EXCEPTION 'lockstep: a column added to % with a default computed at the ALTER (now(), current_user, ...) gets different values on every node', rel::regclass
              USING HINT = 'add the column without a default (or with a constant one), then fill it with an UPDATE (its rows stream)';
          END IF;
        END IF;
      END LOOP;
    END IF;
  END
  $fn$`;
