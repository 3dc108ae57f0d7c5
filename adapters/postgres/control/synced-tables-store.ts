import type { TableName } from '../../../plugin/ports/catalog-table.js';
import type { SyncedTablesStore } from '../../../plugin/ports/synced-tables-store.js';
import type { ControlDb } from './lockstep-schema.js';

/** `lockstep.synced_tables` on a replica: the tables copied (the copy itself records them). */
export class PgSyncedTablesStore implements SyncedTablesStore {
  constructor(private readonly db: ControlDb) {}

  async list(stream: string): Promise<TableName[]> {
    const rows = await this.db
      .selectFrom('lockstep.synced_tables')
      .select(['schema_name', 'table_name'])
      .where('stream', '=', stream)
      .execute();
    return rows.map((r) => ({ schema: r.schema_name, name: r.table_name }));
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.synced_tables').where('stream', '=', stream).execute();
  }
}
