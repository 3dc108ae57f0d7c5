import type pg from 'pg';
import type { CONTROL_MIGRATION_NAMES } from '../../../migrations/names.js';
import { ApplyError, type ApplyFailureKind } from '../../../plugin/ports/apply-error.js';
import { type Lsn, migrationGidTime } from '../../../plugin/protocol/index.js';
import { beforeCopy } from './captured-ddl.js';

/** Where a migration's marker reaches a replica: the packet, and the replica's latest copy. */
export interface MarkerPlace {
  readonly node: string;
  readonly version: number;
  /** Where the primary committed the migration. */
  readonly lsn: Lsn;
  /** The replica's latest copy (see `schemaPoint` in captured-ddl.ts). */
  readonly schemaPoint: Lsn | null;
  /** The error as an ApplyError of this replica (messages scrubbed of secrets). */
  explain(error: unknown): ApplyError;
}

/** What the replica's control schema knows of round `$1`, read in the apply's own transaction. */
const ROUND_SQL = `SELECT to_regclass('lockstep.migration_gids') IS NOT NULL AS known,
  EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()) AS prepared`;

/** The first control-schema migration, and the one that created `lockstep.migration_gids`. */
const SCHEMA_MIGRATION: (typeof CONTROL_MIGRATION_NAMES)[number] = '001-control-schema';
const GIDS_MIGRATION: (typeof CONTROL_MIGRATION_NAMES)[number] = '011-migration-gids';

/**
 * Whether round `$1` committed here; when this replica's table of them was
 * created (Kysely's ISO text); and whether it was created with the control
 * schema itself (one transaction, so one xmin: see migrateControlSchema).
 */
const RECORD_SQL = `SELECT EXISTS (SELECT 1 FROM lockstep.migration_gids WHERE gid = $1) AS committed,
  t.timestamp AS created, t.xmin = s.xmin AS with_schema
  FROM (SELECT 1) one
  LEFT JOIN lockstep.kysely_migration t ON t.name = $2
  LEFT JOIN lockstep.kysely_migration s ON s.name = $3`;

/**
 * Rounds begun before the table's creation plus this margin count as before
 * it. The gid's time is the coordinator host's clock, the creation time the
 * clock of the host that upgraded the replica's control schema (a bus agent's):
 * the margin absorbs skew between them. Too small, a lagging replica upgraded
 * just after a round halts falsely; the cost of a large one is only that the
 * backstop skips rounds run in the first minutes of a replica's table.
 */
const CLOCK_SKEW_MARGIN_MS = 10 * 60_000;

/**
 * The backstop behind a migration's marker, which only advances a replica's
 * version (its rows are not sent: every node ran the migration in its own
 * round): checked in the transaction that stores the new position, the
 * replica must have committed that round (its `lockstep.migration_gids` row,
 * written in the round's prepared transaction). One that did not — left out
 * of the round, its gid rolled back by hand, restored from an older backup —
 * halts here instead of moving its version past a change it lacks. Skipped
 * for a marker older than the replica's copy (the copy has the migration)
 * and for a round that ran before the replica's control schema had the table
 * (nothing to tell it by; the replica may have been upgraded while lagging).
 */
export async function requireMigrationCommitted(
  client: pg.ClientBase,
  gid: string,
  place: MarkerPlace,
): Promise<'committed' | 'in-copy' | 'unrecorded'> {
  if (beforeCopy(place.lsn, place.schemaPoint)) return 'in-copy';
  let round: { committed: boolean; prepared: boolean } | null;
  try {
    round = await readRound(client, gid);
  } catch (error) {
    throw place.explain(error);
  }
  if (round === null) return 'unrecorded';
  if (round.committed) return 'committed';
  if (round.prepared) throw stillPreparedHere(gid, place);
  throw migrationMissing(gid, place);
}

/**
 * Whether round `gid` committed here, or is still prepared; null when this
 * replica did not record its rounds' gids when it ran (no
 * `lockstep.migration_gids`, or the table is younger than the round).
 */
async function readRound(
  client: pg.ClientBase,
  gid: string,
): Promise<{ committed: boolean; prepared: boolean } | null> {
  const found = await client.query<{ known: boolean; prepared: boolean }>(ROUND_SQL, [gid]);
  const { known, prepared } = found.rows[0] as { known: boolean; prepared: boolean };
  if (!known) return null;
  const record = await client.query<TableRecord>(RECORD_SQL, [
    gid,
    GIDS_MIGRATION,
    SCHEMA_MIGRATION,
  ]);
  const { committed, ...table } = record.rows[0] as TableRecord;
  if (!committed && !prepared && ranBeforeTable(gid, table)) return null;
  return { committed, prepared };
}

interface TableRecord {
  committed: boolean;
  created: string | null;
  with_schema: boolean | null;
}

/**
 * Whether round `gid` began before this replica's table existed (within the
 * skew margin). A table born with the control schema was there for every
 * round since the replica's copy (earlier markers are in the copy): no skip,
 * not even in its first minutes. Unknown times (no bookkeeping row, an
 * unparsable gid or timestamp) say no: the check stays on, failing closed.
 */
function ranBeforeTable(gid: string, table: Omit<TableRecord, 'committed'>): boolean {
  if (table.with_schema !== false) return false;
  const began = migrationGidTime(gid);
  const createdAt = table.created === null ? Number.NaN : Date.parse(table.created);
  if (began === null || Number.isNaN(createdAt)) return false;
  return began < createdAt + CLOCK_SKEW_MARGIN_MS;
}

/** Phase two of the round has not reached this replica yet (recovery commits it): retried. */
function stillPreparedHere(gid: string, place: MarkerPlace): ApplyError {
  return markerError(gid, place, 'other', {
    problem: `migration round ${gid} is still prepared here, committed on the primary: its marker waits for it`,
    fix: 'lockstep recover (or the running sidecar recovery) commits it; lockstep retries by itself',
  });
}

/** The replica did not commit the round whose marker it met: it must not pass it. */
function migrationMissing(gid: string, place: MarkerPlace): ApplyError {
  return markerError(gid, place, 'migration-missing', {
    problem: `the stream carries migration round ${gid}, which this replica never committed (left out of the round, its gid rolled back by hand, or restored from an older backup): its version stays before it`,
    fix: `copy replica "${place.node}" anew: stop what applies to it (lockstep run; with bus, its lockstep agent), then lockstep attach --resync ${place.node} --create-schema`,
  });
}

function markerError(
  gid: string,
  place: MarkerPlace,
  kind: ApplyFailureKind,
  text: { problem: string; fix: string },
): ApplyError {
  return new ApplyError({
    node: place.node,
    kind,
    version: place.version,
    migration: gid,
    ...text,
  });
}
