import { ddlFiring } from './ddl-firing.js';
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
 * where only the plain form can run; it builds the same index. Matched on
 * the text with its comments blanked (same length), so a leading comment
 * does not hide it.
 */
export function withoutConcurrently(command: string, options: LexOptions = {}): string {
  const found =
    /^(\s*(?:create\s+(?:unique\s+)?index|drop\s+index|reindex\s+(?:\(\s*[^)]*\)\s*)?(?:index|table|schema|database|system)))\s+concurrently\b/i.exec(
      sameLengthCode(command, options),
    );
  if (!found) return command;
  return command.slice(0, (found[1] as string).length) + command.slice(found[0].length);
}

/** The text with comments turned into spaces (same positions), so a pattern on it indexes the original. */
function sameLengthCode(sql: string, options: LexOptions): string {
  let out = sql;
  for (const token of lexSql(sql, options).tokens)
    if (token.kind === 'comment')
      out = out.slice(0, token.start) + ' '.repeat(token.end - token.start) + out.slice(token.end);
  return out;
}

/** Whether `statement` is one the event trigger fires for and the capture counts in its ordinal. */
function isCapturedDdl(statement: string, options: LexOptions = {}): boolean {
  return ddlFiring(statement, options) === 'fires';
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
