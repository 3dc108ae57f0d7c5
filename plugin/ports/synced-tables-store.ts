import type { TableName } from './catalog-table.js';

/** The tables copied to a replica (`lockstep.synced_tables`). */
export interface SyncedTablesStore {
  list(stream: string): Promise<TableName[]>;
  forget(stream: string): Promise<void>;
}
