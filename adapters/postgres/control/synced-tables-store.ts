import { sql } from 'kysely';
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

  /** The copied tables that still exist, as quoted qualified names (for a TRUNCATE). */
  async existingCopies(stream: string): Promise<string[]> {
    const name = sql<string>`format('%I.%I', schema_name, table_name)`;
    const rows = await this.db
      .selectFrom('lockstep.synced_tables')
      .select(name.as('name'))
      .where('stream', '=', stream)
      .where(sql<boolean>`to_regclass(${name}) IS NOT NULL`)
      .execute();
    return rows.map((r) => r.name);
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.synced_tables').where('stream', '=', stream).execute();
  }
}
