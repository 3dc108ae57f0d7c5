import type {
  HistoryChange,
  MigrationHistoryEntry,
} from '../../../plugin/ports/migration-session.js';
import type { MigrationReading } from '../../../plugin/protocol/migration-summary.js';
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
 * Sessions seen to have both tables readMigrationReading reads: a control
 * schema is only ever upgraded, so they are not looked for again on that
 * session (an agent reads its history every heartbeat). A failing read
 * closes its session; a new one looks again.
 */
const SCHEMA_SEEN = new WeakSet<ControlSession>();

/** When stream $1's current copy began on a replica: its earliest table copy (see readCopiedAt). */
const COPIED_AT_SQL = `SELECT min(copied_at) AS copied_at FROM lockstep.synced_tables
  WHERE stream = $1 AND copy_lsn <> '0/0'::pg_lsn`;

/** The history and the copy time in one statement, both tables known to exist. */
const HISTORY_SQL = `SELECT m.name, m.applied_at, c.copied_at
   FROM (${COPIED_AT_SQL}) c LEFT JOIN lockstep.migrations m ON true`;

/**
 * A node's history, each with when the primary applied it, and when the
 * stream's current copy began there (the earliest table copy: a resync or a
 * join forgets the old ones first; '0/0' rows are tables a migration or DDL
 * created, not copies); none where it has no such table (never attached, or
 * a control schema older than it): no history, not a failure.
 */
export async function readMigrationReading(
  session: ControlSession,
  stream: string,
): Promise<MigrationReading> {
  if (!SCHEMA_SEEN.has(session)) {
    const { rows } = await session.query(
      `SELECT to_regclass('lockstep.migrations') IS NOT NULL AS known,
              to_regclass('lockstep.synced_tables') IS NOT NULL AS copies`,
    );
    const known = rows[0] as { known: boolean; copies: boolean } | undefined;
    if (!known?.known) return { migrations: [], copiedAt: null };
    if (!known.copies) return { migrations: await readMigrations(session), copiedAt: null };
    SCHEMA_SEEN.add(session);
  }
  const { rows } = await session.query(HISTORY_SQL, [stream]);
  const found = rows as { name: string | null; applied_at: Date | null; copied_at: Date | null }[];
  const migrations = found.flatMap((row) =>
    row.name === null
      ? []
      : [{ name: row.name, appliedAt: (row.applied_at as Date).toISOString() }],
  );
  return { migrations, copiedAt: found[0]?.copied_at?.toISOString() ?? null };
}

async function readMigrations(session: ControlSession): Promise<MigrationReading['migrations']> {
  const found = await session.query('SELECT name, applied_at FROM lockstep.migrations');
  return found.rows.map((r) => {
    const row = r as { name: string; applied_at: Date };
    return { name: row.name, appliedAt: row.applied_at.toISOString() };
  });
}

/** When the stream's current copy began on this replica (see {@link readMigrationReading}). */
export async function readCopiedAt(
  session: ControlSession,
  stream: string,
): Promise<string | null> {
  const copy = await session.query(COPIED_AT_SQL, [stream]);
  const copiedAt = (copy.rows[0] as { copied_at: Date | null } | undefined)?.copied_at ?? null;
  return copiedAt?.toISOString() ?? null;
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
