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
}

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
export function summarizeMigrations(history: readonly string[], readAt: Date): MigrationSummary {
  const names = inNameOrder(history);
  return {
    count: names.length,
    last: names[names.length - 1] ?? null,
    digest: migrationDigest(names),
    readAt: readAt.toISOString(),
  };
}

/**
 * What a replica's summary lacks of the primary's history (names in
 * {@link inNameOrder}): [] when it is the primary's; the names when they can be told (the
 * newest ones, or a single one); null when it differs otherwise (more, other
 * or several older ones: `migrate status` with direct access names them).
 */
export function lackingFromSummary(
  primary: readonly string[],
  summary: Pick<MigrationSummary, 'count' | 'digest'>,
): string[] | null {
  if (summary.count === primary.length && summary.digest === migrationDigest(primary)) return [];
  if (summary.count >= primary.length) return null;
  if (migrationDigest(primary.slice(0, summary.count)) === summary.digest)
    return primary.slice(summary.count);
  if (summary.count !== primary.length - 1) return null;
  for (let i = 0; i < primary.length; i++) {
    const without = [...primary.slice(0, i), ...primary.slice(i + 1)];
    if (migrationDigest(without) === summary.digest) return [primary[i] as string];
  }
  return null;
}
