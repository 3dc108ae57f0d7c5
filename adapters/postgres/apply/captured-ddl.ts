import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import {
  capturedStatement,
  compareLsn,
  type Lsn,
  matchesCommandTag,
  withoutConcurrently,
} from '../../../plugin/protocol/index.js';
import { type CapturedSettings, runAsRole } from '../run-as-role.js';

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

/** Where a captured DDL statement runs: the replica, and its place in the stream. */
export interface DdlPlace {
  readonly node: string;
  readonly stream: string;
  readonly version: number;
  /** Where the primary committed it. */
  readonly lsn: Lsn;
  /** The replica's latest copy ({@link schemaPoint}). */
  readonly schemaPoint: Lsn | null;
  /** The error as an ApplyError of this replica (messages scrubbed of secrets). */
  explain(error: unknown): ApplyError;
}

/**
 * DDL captured on the primary, run inside the replica's open transaction at
 * its place in the stream: as the role that ran it, with the primary's
 * search_path, and without CONCURRENTLY, which cannot run inside a
 * transaction (the plain form builds the same index). A table it creates is
 * recorded as in step, so the packet's rows for it apply. Committed before
 * the replica's copy, its effect may be there already: that is not an error.
 */
export async function runCapturedDdl(
  client: pg.ClientBase,
  content: string,
  place: DdlPlace,
): Promise<void> {
  const { searchPath, command, ordinal, role, tag, settings } = JSON.parse(content) as {
    searchPath: string;
    command: string;
    ordinal?: number;
    role: string;
    tag?: string;
    settings?: Omit<CapturedSettings, 'search_path'>;
  };
  const statement = capturedStatement(command, ordinal ?? 1);
  try {
    if (statement === null)
      throw new Error(`DDL statement ${ordinal} not found in the captured query string`);
    // Never a statement the primary did not run: it must be the command the primary reported.
    if (tag && !matchesCommandTag(statement, tag))
      throw new Error(`the statement found is not the ${tag} the primary ran`);
    const run = () =>
      runAsRole(client, role, withoutConcurrently(statement), {
        ...settings,
        search_path: searchPath,
      });
    if (place.schemaPoint === null || compareLsn(place.lsn, place.schemaPoint) >= 0) {
      await run();
      await recordCreatedTables(client, place.stream, 'pg_current_xact_id()::xid');
    } else await runBeforeCopy(client, place, run);
  } catch (error) {
    const explained = place.explain(error);
    throw new ApplyError({
      node: place.node,
      kind: 'schema',
      version: place.version,
      sqlState: explained.sqlState,
      problem: `the DDL captured on the primary failed here: ${(statement ?? command).trim().slice(0, 200)} — ${explained.message.split('\n')[0]}`,
      fix: /^role ".*" does not exist/.test(explained.message)
        ? `create role "${role}" on replica "${place.node}" (captured DDL runs as the role that ran it on the primary; pg_dumpall --roles-only copies roles); lockstep retries by itself`
        : `make replica "${place.node}"'s schema match the primary's before this statement (lockstep doctor lists differences); lockstep retries by itself`,
      cause: error,
    });
  }
}

/** Where the tables a DDL statement just created are recognised: their catalog rows' xmin. */
type CreatorXid = 'pg_current_xact_id()::xid' | '$2::xid';

/** Records the tables created by the transaction (or subtransaction) `creator` as in step. */
async function recordCreatedTables(
  client: pg.ClientBase,
  stream: string,
  creator: CreatorXid,
  subtransaction?: string,
): Promise<void> {
  await client.query(
    `INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
     SELECT $1, n.nspname, c.relname, '0/0', 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND c.xmin = ${creator}
     ON CONFLICT DO NOTHING`,
    subtransaction === undefined ? [stream] : [stream, subtransaction],
  );
}

/**
 * Captured DDL committed before the replica's copy, in a savepoint: an error
 * saying its effect is already there is rolled back to the savepoint and
 * taken as done; any other error stays. A table it creates has the
 * subtransaction's xid as xmin, read from a row it touches there.
 */
async function runBeforeCopy(
  client: pg.ClientBase,
  place: DdlPlace,
  run: () => Promise<void>,
): Promise<void> {
  await client.query('SAVEPOINT lockstep_captured_ddl');
  try {
    await run();
  } catch (error) {
    if (!alreadyInCopy(error, place.lsn, place.schemaPoint)) throw error;
    await client.query('ROLLBACK TO SAVEPOINT lockstep_captured_ddl');
    await client.query('RELEASE SAVEPOINT lockstep_captured_ddl');
    return;
  }
  const { rows } = await client.query<{ xid: string }>(
    'UPDATE lockstep.applied SET lsn = lsn WHERE stream = $1 RETURNING xmin::text AS xid',
    [place.stream],
  );
  if (rows[0]) await recordCreatedTables(client, place.stream, '$2::xid', rows[0].xid);
  await client.query('RELEASE SAVEPOINT lockstep_captured_ddl');
}
