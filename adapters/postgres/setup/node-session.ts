import type pg from 'pg';
import type { CatalogTable } from '../../../plugin/ports/catalog-table.js';
import type { NodeSession, PreparedGidEntry } from '../../../plugin/ports/lockstep-cluster.js';
import type { MigrationReading } from '../../../plugin/protocol/migration-summary.js';
import { endClient } from '../connection/node-connection.js';
import { readMigrationReading } from '../control/migration-history.js';
import { listLockstepGids } from '../control/prepared-transactions.js';
import { readCatalog } from './table-catalog.js';

/** The settings doctor looks at. */
const SETTINGS = `SELECT name, setting FROM pg_settings
  WHERE name IN ('max_prepared_transactions', 'idle_session_timeout', 'wal_sender_timeout', 'max_slot_wal_keep_size')`;

/** What every node's session answers, on one `pg` client. */
export class PgNodeSession implements NodeSession {
  constructor(
    protected readonly client: pg.Client,
    /** Every query has a deadline (the session was opened bounded). */
    protected readonly bounded = false,
  ) {}

  readCatalog(): Promise<CatalogTable[]> {
    return readCatalog(this.client);
  }

  async serverSettings(): Promise<Map<string, string>> {
    const { rows } = await this.client.query<{ name: string; setting: string }>(SETTINGS);
    return new Map(rows.map((r) => [r.name, r.setting]));
  }

  async currentRole(): Promise<string | undefined> {
    const { rows } = await this.client.query<{ role: string }>('SELECT current_user AS role');
    return rows[0]?.role;
  }

  preparedGids(): Promise<PreparedGidEntry[]> {
    return listLockstepGids(this.client);
  }

  migrationReading(stream: string): Promise<MigrationReading> {
    return readMigrationReading(this.client, stream);
  }

  /** Never waits on a frozen host: its socket is dropped should the server not close it. */
  async close(): Promise<void> {
    await endClient(this.client);
  }
}
