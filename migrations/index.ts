import type { Migration, MigrationProvider } from 'kysely';
import * as controlSchema from './001-control-schema.js';
import * as decisionLog from './002-decision-log.js';
import * as migrationHistory from './003-migration-history.js';
import * as streamPause from './004-stream-pause.js';
import * as fencing from './005-fencing.js';
import * as controlEvents from './006-control-events.js';
import * as replicaDatabase from './007-replica-database.js';
import * as joinHolds from './008-join-holds.js';
import * as streamTables from './009-stream-tables.js';
import * as foreignKeyChecks from './010-foreign-key-checks.js';
import * as migrationGids from './011-migration-gids.js';

/** lockstep's own control-schema migrations, in order. Bundled, so no folder is read at run time. */
export const controlMigrations: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      '001-control-schema': controlSchema,
      '002-decision-log': decisionLog,
      '003-migration-history': migrationHistory,
      '004-stream-pause': streamPause,
      '005-fencing': fencing,
      '006-control-events': controlEvents,
      '007-replica-database': replicaDatabase,
      '008-join-holds': joinHolds,
      '009-stream-tables': streamTables,
      '010-foreign-key-checks': foreignKeyChecks,
      '011-migration-gids': migrationGids,
    };
  },
};
