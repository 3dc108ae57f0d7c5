import type pg from 'pg';
import type { CatalogTable } from '../../../plugin/ports/catalog-table.js';
import type { ForeignControlSchema, ReplicaSetup } from '../../../plugin/ports/cluster-setup.js';
import type { ReplicaSession } from '../../../plugin/ports/lockstep-cluster.js';
import type { MigrationHistoryEntry } from '../../../plugin/ports/migration-session.js';
import { readDatabaseId } from '../connection/database-identity.js';
import { dropClient } from '../connection/node-connection.js';
import { controlDbOn } from '../control/control-schema.js';
import {
  dropForeignControlSchema,
  findForeignControlSchema,
} from '../control/foreign-control-schema.js';
import { MigrationHistory } from '../control/migration-history.js';
import { PgPositionsStore } from '../control/positions-store.js';
import { PgSyncedTablesStore } from '../control/synced-tables-store.js';
import { checkCopiedForeignKeys } from './foreign-key-check.js';
import { PgNodeSession } from './node-session.js';
import { createTableStatement } from './table-catalog.js';

/** What attach does on a replica besides the copy, on one session. */
class PgReplicaSetup implements ReplicaSetup {
  constructor(
    private readonly client: pg.Client,
    private readonly name: string,
    private readonly url: string,
    private readonly syncedTables: PgSyncedTablesStore,
  ) {}

  async createTable(table: CatalogTable): Promise<void> {
    await this.client.query(createTableStatement(table));
  }

  databaseId(): Promise<string> {
    return readDatabaseId(this.client);
  }

  findForeignControlSchema(): Promise<ForeignControlSchema | null> {
    return findForeignControlSchema(this.client);
  }

  dropForeignControlSchema(foreign: ForeignControlSchema): Promise<void> {
    return dropForeignControlSchema(this.client, foreign);
  }

  adoptMigrationHistory(
    stream: string,
    entries: readonly MigrationHistoryEntry[],
  ): Promise<string[]> {
    return new MigrationHistory(controlDbOn(this.client)).adopt(stream, entries);
  }

  checkCopiedForeignKeys(stream: string, stallMs: number): Promise<void> {
    const { client } = this;
    return checkCopiedForeignKeys(client, this.syncedTables, stream, this.name, {
      url: this.url,
      // The backend's pid from the connection's BackendKeyData (not in @types/pg).
      pid: () => (client as unknown as { processID?: number }).processID,
      boundMs: stallMs,
      drop: () => dropClient(client),
    });
  }
}

/** A session on a replica with its stores, all on one `pg` client. */
export class PgReplicaSession extends PgNodeSession implements ReplicaSession {
  readonly setup: PgReplicaSetup;
  readonly positions: PgPositionsStore;
  readonly syncedTables: PgSyncedTablesStore;

  constructor(client: pg.Client, bounded = false, name = 'replica', url = '') {
    super(client, bounded);
    const db = controlDbOn(client);
    this.positions = new PgPositionsStore(db);
    this.syncedTables = new PgSyncedTablesStore(db);
    this.setup = new PgReplicaSetup(client, name, url, this.syncedTables);
  }

  async forgetStream(stream: string): Promise<void> {
    // A transaction left prepared (detach --force) holds the position row: never wait on it
    // longer than 5 s, nor longer than the session's own bound.
    await this.client.query(
      `SELECT set_config('lock_timeout', CASE
         WHEN current_setting('lock_timeout') <> '0'
          AND current_setting('lock_timeout')::interval < interval '5s'
         THEN current_setting('lock_timeout') ELSE '5s' END, false)`,
    );
    await this.positions.forget(stream);
    await this.syncedTables.forget(stream);
  }
}
