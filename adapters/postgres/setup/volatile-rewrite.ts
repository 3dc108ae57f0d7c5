/** The table_rewrite event trigger that refuses rewrites whose values would differ per node. */
export const REWRITE_EVENT_TRIGGER = 'lockstep_refuse_volatile_rewrite';

/**
 * Adding a column whose default is volatile (`gen_random_uuid()`,
 * `clock_timestamp()`, `nextval`, an identity) rewrites the table with values
 * each node computes anew: refused for a replicated table that has rows. Everything is
 * schema-qualified: it runs as whoever alters the table.
 */
export const REFUSE_VOLATILE_REWRITE = `
  CREATE OR REPLACE FUNCTION lockstep.refuse_volatile_rewrite() RETURNS event_trigger
  LANGUAGE plpgsql AS $fn$
  DECLARE
    rel oid := pg_catalog.pg_event_trigger_table_rewrite_oid();
    has_rows boolean;
  BEGIN
    IF pg_catalog.pg_event_trigger_table_rewrite_reason() OPERATOR(pg_catalog.&) 2 OPERATOR(pg_catalog.=) 0
       OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables p JOIN pg_catalog.pg_class c
                        ON c.relname OPERATOR(pg_catalog.=) p.tablename
                       JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                        AND n.nspname OPERATOR(pg_catalog.=) p.schemaname
                      WHERE c.oid OPERATOR(pg_catalog.=) rel) THEN
      RETURN;
    END IF;
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s)', rel::pg_catalog.regclass) INTO has_rows;
    -- A default rewrite with a column added now that has a default or identity: its default is
    -- volatile (a constant one is stored once, without a rewrite), or it is an identity.
    IF has_rows AND EXISTS (
         SELECT 1 FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attnum OPERATOR(pg_catalog.>) 0
            AND a.attgenerated OPERATOR(pg_catalog.=) ''
            AND (a.atthasdef OR a.attidentity OPERATOR(pg_catalog.<>) '')
            AND a.xmin::text::pg_catalog.int8 OPERATOR(pg_catalog.>=) pg_catalog.pg_current_xact_id()::xid::text::pg_catalog.int8) THEN
      RAISE EXCEPTION 'lockstep: a column added to % with a volatile default gets different values on every node', rel::pg_catalog.regclass
        USING HINT = 'add the column without a default (or with a constant one), then fill it with an UPDATE (its rows stream)';
    END IF;
  END
  $fn$`;
