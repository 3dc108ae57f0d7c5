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

  /** Copied tables whose foreign keys were loaded unchecked and are not checked yet. */
  async uncheckedForeignKeys(stream: string): Promise<TableName[]> {
    const rows = await this.db
      .selectFrom('lockstep.synced_tables')
      .select(['schema_name', 'table_name'])
      .where('stream', '=', stream)
      .where('foreign_keys_checked', '=', false)
      .orderBy('schema_name')
      .orderBy('table_name')
      .execute();
    return rows.map((r) => ({ schema: r.schema_name, name: r.table_name }));
  }

  async markForeignKeysChecked(stream: string, table: TableName): Promise<void> {
    await this.db
      .updateTable('lockstep.synced_tables')
      .set({ foreign_keys_checked: true })
      .where('stream', '=', stream)
      .where('schema_name', '=', table.schema)
      .where('table_name', '=', table.name)
      .execute();
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.synced_tables').where('stream', '=', stream).execute();
  }
}
