import { type LexOptions, lexSql } from './sql-lexer.js';
import { splitStatements } from './sql-split.js';

export { readStatements, type Split, splitStatements } from './sql-split.js';

/**
 * SQL text, read without a parser: what lockstep needs to know of statements
 * it did not write (migrations, DDL captured on the primary). Pure.
 */

/** The SQL text with comments, string literals and dollar-quoted bodies blanked out. */
export function codeOnly(sql: string, options: LexOptions = {}): string {
  let out = '';
  let at = 0;
  for (const token of lexSql(sql, options).tokens) {
    const blank =
      token.kind === 'string'
        ? "''"
        : token.kind === 'quoted'
          ? '""'
          : token.kind === 'comment' || token.kind === 'dollar'
            ? ' '
            : null;
    if (blank === null) continue;
    out += sql.slice(at, token.start) + blank;
    at = token.end;
  }
  return out + sql.slice(at);
}

/**
 * A captured `CREATE INDEX CONCURRENTLY` (or DROP/REINDEX) without
 * CONCURRENTLY: a replica runs captured DDL inside its own transaction,
 * where only the plain form can run; it builds the same index.
 */
export function withoutConcurrently(command: string): string {
  return command.replace(
    /^(\s*(?:create\s+(?:unique\s+)?index|drop\s+index|reindex\s+(?:\(\s*[^)]*\)\s*)?(?:index|table|schema|database|system)))\s+concurrently\b/i,
    '$1',
  );
}

/** Statements an event trigger reports at ddl_command_end and lockstep's capture sends (see ddl-capture.ts). */
const CAPTURED =
  /^(create|alter|drop|comment|grant|revoke|security\s+label|import\s+foreign\s+schema|refresh\s+materialized\s+view)\b/;
const NOT_CAPTURED =
  /^(create|alter|drop)\s+(database|role|user|group|tablespace|event\s+trigger|publication|subscription)\b|^(grant|revoke)\b(?![\s\S]*\bon\b)/;

/** Whether `statement` is one the event trigger fires for (and counts in its ordinal). */
export function isCapturedDdl(statement: string, options: LexOptions = {}): boolean {
  const lower = codeOnly(statement, options).trim().replace(/\s+/g, ' ').toLowerCase();
  return CAPTURED.test(lower) && !NOT_CAPTURED.test(lower);
}

/**
 * The DDL statement a capture message stands for: the whole text when it is
 * one statement, else the `ordinal`-th captured DDL statement of a
 * multi-statement query string (its other statements reach the replica through
 * the stream, or are transaction control). Null when it cannot be found.
 */
export function capturedStatement(
  command: string,
  ordinal: number,
  options: LexOptions = {},
): string | null {
  const statements = splitStatements(command, options);
  if (statements.length <= 1) return ordinal === 1 ? (statements[0] ?? null) : null;
  return statements.filter((st) => isCapturedDdl(st, options))[ordinal - 1] ?? null;
}

/**
 * Whether `statement` is one the event trigger could have reported with
 * `tag` (`CREATE TABLE`, `ALTER INDEX`, …): the tag's words appear in order
 * among its first words (`CREATE UNLOGGED TABLE IF NOT EXISTS` is a `CREATE
 * TABLE`). A replica runs a captured statement only when it matches, so a
 * lexing difference can never make it run a statement the primary did not.
 */
export function matchesCommandTag(
  statement: string,
  tag: string,
  options: LexOptions = {},
): boolean {
  const words = codeOnly(statement, options)
    .trim()
    .toUpperCase()
    .split(/[\s(]+/)
    .slice(0, 8);
  let at = 0;
  for (const word of tag.toUpperCase().split(/\s+/)) {
    at = words.indexOf(word, at);
    if (at === -1) return false;
    at++;
  }
  return splitStatements(statement, options).length === 1;
}
