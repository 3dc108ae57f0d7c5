import type {
  HistoryChange,
  MigrationHistoryEntry,
} from '../../../plugin/ports/migration-session.js';
import type { ControlDb } from './lockstep-schema.js';

/**
 * A node's migration history (`lockstep.migrations`), on a session the caller
 * holds: a change is written inside the migration's own transaction, so it is
 * prepared, committed or rolled back with the migration.
 */
export class MigrationHistory {
  constructor(private readonly db: ControlDb) {}

  /**
   * Inserts or deletes the migration's row. An insert records the stream
   * version the node stood at: its applied position (a replica), else the
   * stream's (the primary), else 0.
   */
  async record(stream: string, change: HistoryChange): Promise<void> {
    if (change.op === 'delete') {
      await this.db.deleteFrom('lockstep.migrations').where('name', '=', change.name).execute();
      return;
    }
    await this.db
      .insertInto('lockstep.migrations')
      .values((eb) => ({
        name: change.name,
        checksum: change.checksum,
        version: eb.fn.coalesce(
          eb.selectFrom('lockstep.applied').select('version').where('stream', '=', stream),
          eb.selectFrom('lockstep.streams').select('version').where('stream', '=', stream),
          eb.lit(0),
        ),
      }))
      .execute();
  }

  /** Every applied migration, in name order. */
  async list(): Promise<MigrationHistoryEntry[]> {
    const rows = await this.db
      .selectFrom('lockstep.migrations')
      .select(['name', 'checksum', 'applied_at'])
      .orderBy('name')
      .execute();
    return rows.map((r) => ({
      name: r.name,
      checksum: r.checksum,
      appliedAt: r.applied_at.toISOString(),
    }));
  }
}
