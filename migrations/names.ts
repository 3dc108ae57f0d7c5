/**
 * Names of lockstep's control-schema migrations, in order. Kept apart from the
 * modules so a starting sidecar can tell whether anything is to do without
 * loading Kysely (a test checks the two lists agree).
 */
export const CONTROL_MIGRATION_NAMES = [
  '001-control-schema',
  '002-decision-log',
  '003-migration-history',
  '004-stream-pause',
  '005-fencing',
  '006-control-events',
  '007-replica-database',
  '008-join-holds',
  '009-stream-tables',
  '010-foreign-key-checks',
  '011-migration-gids',
] as const;
