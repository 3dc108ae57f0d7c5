/** The sql_drop event trigger that tells the DDL capture a DROP removed only temporary objects. */
export const DROP_EVENT_TRIGGER = 'lockstep_note_temporary_drop';

/** The transaction-local setting it notes that in, read and cleared by the capture at ddl_command_end. */
export const TEMPORARY_DROP_SETTING = 'lockstep.temporary_drop';

/**
 * A DROP reports no commands at ddl_command_end, so the capture cannot see
 * what it dropped; sql_drop, which fires just before, can. A DROP whose
 * named objects were all temporary is noted, and the capture keeps it to the
 * session (a replica has no such table: it would halt, or drop the table of
 * that name it has). A DROP that dropped nothing fires no sql_drop: the
 * capture clears the note after every command, so none is left over for it
 * (nor one an `ALTER … DROP COLUMN` left).
 */
export const NOTE_TEMPORARY_DROP = `
  CREATE OR REPLACE FUNCTION lockstep.note_temporary_drop() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  BEGIN
    PERFORM set_config('${TEMPORARY_DROP_SETTING}',
      CASE WHEN EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE original)
                AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects()
                                 WHERE original AND NOT is_temporary)
           THEN 'on' ELSE 'off' END, true);
  END
  $fn$`;
