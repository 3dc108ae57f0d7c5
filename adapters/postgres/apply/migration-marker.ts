import type pg from 'pg';
import { ApplyError, type ApplyFailureKind } from '../../../plugin/ports/apply-error.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
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

/**
 * The backstop behind a migration's marker, which only advances a replica's
 * version (its rows are not sent: every node ran the migration in its own
 * round): checked in the transaction that stores the new position, the
 * replica must have committed that round (its `lockstep.migration_gids` row,
 * written in the round's prepared transaction). One that did not — left out
 * of the round, its gid rolled back by hand, restored from an older backup —
 * halts here instead of moving its version past a change it lacks. Skipped
 * for a marker older than the replica's copy (the copy has the migration)
 * and on a control schema older than the table (nothing to tell it by).
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

/** Whether round `gid` committed here, or is still prepared; null without `lockstep.migration_gids`. */
async function readRound(
  client: pg.ClientBase,
  gid: string,
): Promise<{ committed: boolean; prepared: boolean } | null> {
  const found = await client.query<{ known: boolean; prepared: boolean }>(ROUND_SQL, [gid]);
  const { known, prepared } = found.rows[0] as { known: boolean; prepared: boolean };
  if (!known) return null;
  const row = await client.query('SELECT 1 FROM lockstep.migration_gids WHERE gid = $1', [gid]);
  return { committed: row.rows.length > 0, prepared };
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
