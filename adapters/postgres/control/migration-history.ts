import type {
  HistoryChange,
  MigrationHistoryEntry,
} from '../../../plugin/ports/migration-session.js';
import type { ControlDb, ControlSession } from './lockstep-schema.js';

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

  /**
   * Inserts the entries this node lacks (attach, from the primary's
   * history), each with the node's stream version as {@link record} does;
   * the names added.
   */
  async adopt(stream: string, entries: readonly MigrationHistoryEntry[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const rows = await this.db
      .insertInto('lockstep.migrations')
      .values((eb) =>
        entries.map((e) => ({
          name: e.name,
          checksum: e.checksum,
          applied_at: new Date(e.appliedAt),
          version: eb.fn.coalesce(
            eb.selectFrom('lockstep.applied').select('version').where('stream', '=', stream),
            eb.lit(0),
          ),
        })),
      )
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('name')
      .execute();
    return rows.map((r) => r.name);
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

/**
 * The names in a node's history, in no particular order; none where it has
 * no such table (never attached, or a control schema older than it): no
 * history, not a failure.
 */
export async function readMigrationNames(session: ControlSession): Promise<string[]> {
  const { rows } = await session.query(
    `SELECT to_regclass('lockstep.migrations') IS NOT NULL AS known`,
  );
  if (!(rows[0] as { known: boolean } | undefined)?.known) return [];
  const found = await session.query('SELECT name FROM lockstep.migrations');
  return found.rows.map((r) => (r as { name: string }).name);
}

/**
 * Records migration round `gid` inside its own transaction: what tells a
 * COMMIT PREPARED retry that an earlier attempt committed. A node whose
 * control schema predates the table (a bus replica whose agent has not run
 * a lockstep that upgrades it yet) is skipped: there a lost answer cannot be told from a
 * rollback, and phase two counts the gid done as it did before the table.
 */
export async function recordMigrationGid(
  session: ControlSession,
  stream: string,
  gid: string,
): Promise<void> {
  if (!(await hasMigrationGids(session))) return;
  await session.query('INSERT INTO lockstep.migration_gids (gid, stream) VALUES ($1, $2)', [
    gid,
    stream,
  ]);
}

async function hasMigrationGids(session: ControlSession): Promise<boolean> {
  const { rows } = await session.query(
    `SELECT to_regclass('lockstep.migration_gids') IS NOT NULL AS known`,
  );
  return (rows[0] as { known: boolean }).known;
}

/**
 * Whether migration round `gid` committed on this node: its record is there.
 * Null when the node has no such records (a control schema older than them).
 */
export async function migrationGidLanded(
  session: ControlSession,
  gid: string,
): Promise<boolean | null> {
  if (!(await hasMigrationGids(session))) return null;
  const found = await session.query('SELECT 1 FROM lockstep.migration_gids WHERE gid = $1', [gid]);
  return found.rows.length > 0;
}
