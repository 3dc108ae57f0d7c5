import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import {
  chooseCapturedStatement,
  codeOnly,
  compareLsn,
  type Lsn,
  withoutConcurrently,
} from '../../../plugin/protocol/index.js';
import { sqlName } from '../../../plugin/protocol/sql-name.js';
import { type CapturedSettings, runAsRole } from './run-as-role.js';

/** Whether something committed at `lsn` is already in the replica's copy (before its schema point). */
export function beforeCopy(lsn: Lsn, point: Lsn | null): boolean {
  return point !== null && compareLsn(lsn, point) < 0;
}

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
 * the replica's copy, it is not run: like the rows before the copy, its
 * effect is in what the replica was given (its schema, checked against the
 * primary's by attach, and the copied data); replaying it could undo copied
 * data (a column dropped and added again, a table dropped and created again).
 */
export async function runCapturedDdl(
  client: pg.ClientBase,
  content: string,
  place: DdlPlace,
): Promise<'ran' | 'in-copy'> {
  if (beforeCopy(place.lsn, place.schemaPoint)) return 'in-copy';
  const { searchPath, command, ordinal, role, tag, settings } = JSON.parse(content) as {
    searchPath: string;
    command: string;
    ordinal?: number;
    role: string;
    tag?: string;
    settings?: Omit<CapturedSettings, 'search_path'>;
  };
  const choice = chooseCapturedStatement({
    command,
    ordinal: ordinal ?? 1,
    tag,
    standardConformingStrings: scsOf(settings),
  });
  if ('refused' in choice)
    throw refusedHere(place, shownCommand(command, scsOf(settings) ?? true), choice.refused);
  const { statement } = choice;
  try {
    await runAsRole(
      client,
      role,
      withoutConcurrently(statement, {
        standardConformingStrings: choice.standardConformingStrings,
      }),
      {
        ...settings,
        standard_conforming_strings: choice.standardConformingStrings ? 'on' : 'off',
        search_path: searchPath,
      },
    );
    await client.query(
      `INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
       SELECT $1, n.nspname, c.relname, '0/0', 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.xmin = pg_current_xact_id()::xid
       ON CONFLICT DO NOTHING`,
      [place.stream],
    );
  } catch (error) {
    const explained = place.explain(error);
    throw new ApplyError({
      node: place.node,
      kind: 'schema',
      version: place.version,
      sqlState: explained.sqlState,
      problem: `the DDL captured on the primary failed here: ${codeOnly(statement.trim(), { standardConformingStrings: choice.standardConformingStrings }).slice(0, 200)} — ${explained.message.split('\n')[0]}`,
      fix: /^role ".*" does not exist/.test(explained.message)
        ? `create role ${sqlName(role)} on replica "${place.node}" (captured DDL runs as the role that ran it on the primary; pg_dumpall --roles-only copies roles); lockstep retries by itself`
        : `make replica "${place.node}"'s schema match the primary's before this statement (lockstep doctor lists differences); lockstep retries by itself`,
      cause: error,
    });
  }
  return 'ran';
}

/** The primary's standard_conforming_strings (recorded since capture 3); undefined when not recorded. */
function scsOf(
  settings: { standard_conforming_strings?: string } | undefined,
): boolean | undefined {
  const value = settings?.standard_conforming_strings;
  return value === undefined ? undefined : value === 'on';
}

/**
 * The query string as a message shows it: string literals blanked, as read
 * with either setting (a refused string may read either way, and a literal
 * may hold a password); where the two readings differ, only its text before
 * the first quote.
 */
function shownCommand(command: string, standardConformingStrings: boolean): string {
  const text = command.trim();
  const one = codeOnly(text, { standardConformingStrings });
  const other = codeOnly(text, { standardConformingStrings: !standardConformingStrings });
  const shown = one === other ? one : `${text.slice(0, text.search(/['"$]|$/))}…`;
  return shown.slice(0, 200);
}

/**
 * The replica cannot tell for sure which statement of the query string the
 * primary ran: it halts instead of guessing. The primary ran it, so a fresh
 * copy brings the replica its effect.
 */
function refusedHere(place: DdlPlace, shown: string, why: string): ApplyError {
  return new ApplyError({
    node: place.node,
    kind: 'schema',
    version: place.version,
    problem: `the DDL captured on the primary is not run here: ${why} — in ${shown}`,
    fix: `copy replica "${place.node}" anew (stop lockstep run, then lockstep attach --resync ${place.node}); send DDL as one statement per query string, with E'' strings for backslashes, or through lockstep migrate`,
  });
}

/**
 * Captured DDL reached a replica whose lockstep has `twoPhase.captureDdl` off
 * (an agent configured apart from the publisher): it halts there instead of
 * running a statement its configuration does not allow.
 */
export function captureOffHere(node: string, version: number): ApplyError {
  return new ApplyError({
    node,
    kind: 'schema',
    version,
    problem:
      'the stream carries DDL captured on the primary, and twoPhase.captureDdl is off here: not run',
    fix: `run replica "${node}"'s lockstep with the configuration lockstep run uses (twoPhase.captureDdl: true), or detach and attach again without captureDdl`,
  });
}
