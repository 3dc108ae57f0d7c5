import { LockstepError } from '../ports/lockstep-error.js';
import { isMigrationGid } from '../protocol/index.js';
import {
  type AppliedMigration,
  copiedBefore,
  inNameOrder,
  lackingFromSummary,
  type MigrationSummary,
} from '../protocol/migration-summary.js';

/** What status found of a replica's migration history against the primary's. */
export interface MigrationGap {
  /** The primary's migrations it lacks (when they can be told). */
  readonly missing: string[];
  /** Its history is not the primary's (lacking ones, or others). */
  readonly differs: boolean;
  /** The error naming the replica, the migrations and the fix (null when it is the primary's). */
  readonly error: string | null;
}

/**
 * How a replica's history was read: directly (names, and when its current
 * copy began), or from its agent's report (a summary, with that time from
 * newer agents).
 */
export type ReplicaHistory =
  | { readonly names: readonly string[]; readonly copiedAt: string | null }
  | { readonly summary: MigrationSummary };

/** A replica's status with the gap's fields, its error first (it lasts until a resync). */
export function withGap<R extends ReplicaGapFields>(replica: R, gap: MigrationGap | null): R {
  if (!gap?.differs) return replica;
  return {
    ...replica,
    migrationsDiffer: true,
    missingMigrations: gap.missing,
    error: [gap.error, replica.error].filter(Boolean).join('\n'),
    errorAt: replica.errorAt ?? new Date().toISOString(),
  };
}

/** The fields of a replica's status a gap sets. */
interface ReplicaGapFields {
  migrationsDiffer: boolean;
  missingMigrations: string[];
  error: string | null;
  errorAt: string | null;
}

const SAME: MigrationGap = { missing: [], differs: false, error: null };

/**
 * Judges a replica's history by the state, not by an event: what the primary
 * recorded and the replica lacks is reported until the replica has it. Not
 * judged (null) without the primary's history, or while one of the stream's
 * migration gids is still prepared on the replica or the primary (phase two
 * not done yet: the row is in that transaction). `preparedGids`: both
 * nodes'; the replica's listed before its history was read (a gid committed in
 * between is in it). A migration the primary
 * applied before the replica's copy began is in its tables: lacking its row
 * is not reported ({@link copiedBefore}).
 */
export function judgeMigrations(
  replica: string,
  stream: string,
  primaryHistory: readonly AppliedMigration[] | null,
  history: ReplicaHistory,
  preparedGids: readonly string[],
): MigrationGap | null {
  if (primaryHistory === null) return null;
  if (preparedGids.some((gid) => isMigrationGid(gid, stream))) return null;
  const primary = primaryHistory.map((m) => m.name);
  const copiedAt = 'names' in history ? history.copiedAt : history.summary.copiedAt;
  const exempt = copiedBefore(primaryHistory, copiedAt);
  // Only what it lacks is judged, never what it has more: a migration commits on the replicas
  // first and on the primary last, so a replica read after the primary may hold one the primary's
  // history did not yet (`migrate status` lists such rows). What it lacks stays until a resync.
  if ('names' in history) {
    const has = new Set([...history.names, ...exempt]);
    const missing = primary.filter((n) => !has.has(n));
    if (missing.length === 0) return SAME;
    return { missing, differs: true, error: gapError(replica, missing) };
  }
  const ordered = inNameOrder(primary);
  const missing = lackingFromSummary(ordered, history.summary, exempt);
  if (missing?.length === 0) return SAME;
  if (missing) return { missing, differs: true, error: gapError(replica, missing) };
  const { count, last } = history.summary;
  // A migration committed there first may be on its way to the primary (the next status judges
  // it): spared when it has more names than the primary, or its newest name is one the primary
  // does not know and it has no sure lack (fewer names than the primary's past those its copy
  // may lack). Otherwise it differs, whatever it has more.
  const known = last === null || ordered.includes(last);
  if (count > ordered.length) return null;
  if (!known && count >= ordered.length - exempt.length) return null;
  return {
    missing: [],
    differs: true,
    error: differsError(replica, `${count} migrations (last ${last ?? 'none'})`, ordered),
  };
}

const fixFor = (replica: string) =>
  `lockstep attach --resync ${replica} --create-schema with the sidecar stopped (copies the replica anew and the primary's migration history with it; a column a migration added to an existing table: add it on ${replica} first, doctor names it); lockstep migrate status compares every node's history`;

function gapError(replica: string, missing: readonly string[]): string {
  const lacks = `lacks migration${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that the primary has (rolled back or lost there before phase two?)`;
  return new LockstepError({
    node: replica,
    setting: 'migrations',
    problem: `its migration history is not the primary's: it ${lacks}`,
    fix: fixFor(replica),
  }).message;
}

function differsError(replica: string, has: string, primary: readonly string[]): string {
  return new LockstepError({
    node: replica,
    setting: 'migrations',
    problem: `its migration history is not the primary's: its agent reports ${has}, the primary has ${primary.length} (last ${primary[primary.length - 1] ?? 'none'})`,
    fix: fixFor(replica),
  }).message;
}
