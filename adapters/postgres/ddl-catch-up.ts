import { compareLsn, type Lsn } from '../../plugin/protocol/index.js';

/**
 * What a captured DDL statement may find already done on a replica that is
 * catching up to its copy: the object it creates exists, or the one it drops
 * or alters is gone. Errors about roles and privileges are never among them.
 */
const ALREADY_DONE = new Set([
  '42P07', // duplicate_table
  '42701', // duplicate_column
  '42710', // duplicate_object
  '42P06', // duplicate_schema
  '42723', // duplicate_function
  '42P01', // undefined_table
  '42703', // undefined_column
  '3F000', // invalid_schema_name
  '42883', // undefined_function
  '42704', // undefined_object (an index, a type), unless it names a role
]);

/**
 * The point from which this replica's schema is its own history: the latest
 * snapshot any of its tables was copied at. A replica joining or resynced is
 * placed at an older position of the stream and replays DDL committed before
 * that snapshot, while its schema (made to match the primary's for the copy,
 * or restored from a later pg_dump) already has it.
 */
export function schemaPoint(copies: Iterable<Lsn>): Lsn | null {
  let latest: Lsn | null = null;
  for (const lsn of copies) if (latest === null || compareLsn(lsn, latest) > 0) latest = lsn;
  return latest;
}

/** Whether a captured DDL statement committed at `lsn` failed only because the replica's copy already has its effect. */
export function alreadyInCopy(error: unknown, lsn: Lsn, point: Lsn | null): boolean {
  if (point === null || compareLsn(lsn, point) >= 0) return false;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !ALREADY_DONE.has(code)) return false;
  return !(code === '42704' && typeof message === 'string' && /^role /.test(message));
}
