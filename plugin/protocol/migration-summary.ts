import { createHash } from 'node:crypto';

/**
 * A replica's migration history as its agent reports it over the bus: small
 * whatever the history's length (a count, the last name and a digest of
 * every name), so `status` can tell whether it is the primary's and, in the
 * usual cases (the newest ones lacking, or one lacking), which are lacking.
 */
export interface MigrationSummary {
  /** How many migrations `lockstep.migrations` holds. */
  readonly count: number;
  /** The last one in {@link inNameOrder} (null: none). */
  readonly last: string | null;
  /** sha256 (hex) of the names in {@link inNameOrder}, each followed by a newline. */
  readonly digest: string;
  /** When the agent read it (its clock), after it listed the replica's prepared gids. */
  readonly readAt: string;
  /**
   * When the replica's current copy began ({@link MigrationReading.copiedAt});
   * absent from older agents (then nothing is exempt).
   */
  readonly copiedAt?: string | null;
}

/** A migration in the primary's history and when the primary applied it (its clock). */
export interface AppliedMigration {
  readonly name: string;
  readonly appliedAt: string;
}

/** A node's migration history as status reads it, in one session. */
export interface MigrationReading {
  readonly migrations: readonly AppliedMigration[];
  /**
   * On a replica: the earliest `copied_at` of the stream's table copies (its
   * clock), null when none was copied. A resync or a join forgets the old
   * copies first, and a table added later is copied later, so the earliest
   * is when the current full copy began: the latest full copy.
   */
  readonly copiedAt: string | null;
}

/**
 * The primary's migrations applied before a replica's copy began, oldest
 * first: they are in its tables by construction, so lacking their history
 * rows (attach copied no history before it did) is no divergence. The times
 * come from two clocks (the primary's `applied_at`, the replica's
 * `copied_at`): a skew larger than the time between a migration and a copy
 * moves a migration across the line. No margin is added (keep the nodes'
 * clocks synchronized): a margin would hide a real gap as often as a false one.
 */
export function copiedBefore(
  primary: readonly AppliedMigration[],
  copiedAt: string | null | undefined,
): string[] {
  if (!copiedAt) return [];
  const copy = Date.parse(copiedAt);
  return primary
    .filter((m) => Date.parse(m.appliedAt) < copy)
    .sort((a, b) => Date.parse(a.appliedAt) - Date.parse(b.appliedAt) || cmp(a.name, b.name))
    .map((m) => m.name);
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Names in one order every node agrees on (code units, not a database's collation). */
export function inNameOrder(names: readonly string[]): string[] {
  return [...names].sort();
}

/** The digest of a history's names, in the order given ({@link inNameOrder}). */
export function migrationDigest(names: readonly string[]): string {
  const hash = createHash('sha256');
  for (const name of names) hash.update(`${name}\n`);
  return hash.digest('hex');
}

/** The summary of a history. */
export function summarizeMigrations(
  history: readonly string[],
  readAt: Date,
  copiedAt: string | null = null,
): MigrationSummary {
  const names = inNameOrder(history);
  return {
    count: names.length,
    last: names[names.length - 1] ?? null,
    digest: migrationDigest(names),
    readAt: readAt.toISOString(),
    copiedAt,
  };
}

/**
 * What a replica's summary lacks of the primary's history (names in
 * {@link inNameOrder}), past the `exempt` ones ({@link copiedBefore}, oldest
 * first): [] when it is the primary's; the names when they can be told (the
 * newest ones, or a single one); null when it differs otherwise (more, other
 * or several older ones: `migrate status` with direct access names them).
 * A replica attached before attach copied the history lacks the exempt
 * migrations applied before its first copy, the oldest ones (a later resync
 * keeps its rows): the primary's history is tried with all of them, without
 * the oldest as many as the count says, and without any.
 */
export function lackingFromSummary(
  primary: readonly string[],
  summary: Pick<MigrationSummary, 'count' | 'digest'>,
  exempt: readonly string[] = [],
): string[] | null {
  const drops = new Set([0, primary.length - summary.count, exempt.length]);
  const exempted = new Set(exempt);
  let best: string[] | null = null;
  for (const drop of drops) {
    if (drop < 0 || drop > exempt.length || (drop > 0 && exempt.length === 0)) continue;
    const dropped = new Set(exempt.slice(0, drop));
    const found = lackingFrom(
      primary.filter((n) => !dropped.has(n)),
      summary,
    )?.filter((n) => !exempted.has(n));
    if (found && (best === null || found.length < best.length)) best = found;
  }
  return best;
}

/** Longest history in which a single lacking migration is searched for (quadratic in its length). */
const SINGLE_GAP_SEARCH_LIMIT = 256;

function lackingFrom(
  primary: readonly string[],
  summary: Pick<MigrationSummary, 'count' | 'digest'>,
): string[] | null {
  if (summary.count === primary.length && summary.digest === migrationDigest(primary)) return [];
  if (summary.count >= primary.length) return null;
  if (migrationDigest(primary.slice(0, summary.count)) === summary.digest)
    return primary.slice(summary.count);
  // One lacking among many: a digest per candidate, so only for histories of a bounded length.
  if (summary.count !== primary.length - 1 || primary.length > SINGLE_GAP_SEARCH_LIMIT) return null;
  for (let i = 0; i < primary.length; i++) {
    const without = [...primary.slice(0, i), ...primary.slice(i + 1)];
    if (migrationDigest(without) === summary.digest) return [primary[i] as string];
  }
  return null;
}
