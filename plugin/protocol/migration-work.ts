/**
 * With `bus`, an agent runs a migration only as the primary wrote it: the
 * migrate command commits the round's work (gid, SQL, history change) as a
 * control event in the barrier's transaction. Postgres's permissions vouch
 * for the row and the stream places it before the migration's prepare on
 * the replica; a NATS request only names the gid.
 */
export interface MigrationWork {
  readonly gid: string;
  /** The statements, run as one query string. */
  readonly sql: string;
  readonly history:
    | { readonly op: 'insert'; readonly name: string; readonly checksum: string }
    | { readonly op: 'delete'; readonly name: string }
    | null;
}

export function encodeMigrationWork(work: MigrationWork): string {
  return JSON.stringify({ gid: work.gid, sql: work.sql, history: work.history });
}

/** The work a control event carries; null for anything malformed (never run). */
export function decodeMigrationWork(content: string): MigrationWork | null {
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const { gid, sql, history } = value as Record<string, unknown>;
  if (typeof gid !== 'string' || typeof sql !== 'string') return null;
  if (history !== null && !validHistory(history)) return null;
  return { gid, sql, history: history as MigrationWork['history'] };
}

function validHistory(history: unknown): boolean {
  if (history === null || typeof history !== 'object') return false;
  const h = history as Record<string, unknown>;
  if (typeof h.name !== 'string') return false;
  return h.op === 'delete' || (h.op === 'insert' && typeof h.checksum === 'string');
}
