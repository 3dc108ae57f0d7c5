import { type Lexed, type LexOptions, lexSql } from './sql-lexer.js';

/**
 * A query string cut into statements at top-level semicolons, as
 * PostgreSQL reads it. Pure.
 */
export interface Split {
  /** The statements, trimmed; empty ones (only comments or nothing) left out. */
  readonly statements: readonly string[];
  /** Why PostgreSQL may cut it differently (or refuse it); null when the cut is exact. */
  readonly unsure: string | null;
  /** Whether PostgreSQL refuses the text outright, so it never ran (see {@link Lexed}). */
  readonly refused: boolean;
  /**
   * Whether the text holds the words `BEGIN ATOMIC`: a SQL-standard routine
   * body keeps its semicolons by the server's grammar, not its scanner, so
   * no cut here is sure for it (the capture refuses such bodies).
   */
  readonly atomicBody: boolean;
}

/** Cuts `sql` into statements; see {@link Split}. */
export function readStatements(sql: string, options: LexOptions = {}): Split {
  const lexed = lexSql(sql, options);
  const statements: string[] = [];
  let unsure = lexed.unsure;
  let atomicBody = false;
  let start = 0;
  let code = false;
  let parens = 0;
  let lastWord = '';
  for (const token of lexed.tokens) {
    if (token.kind === 'semicolon' && parens === 0) {
      if (code) statements.push(sql.slice(start, token.start).trim());
      start = token.end;
      code = false;
      continue;
    }
    // The server's grammar never accepts a semicolon inside parentheses: such text did not run.
    if (token.kind === 'semicolon') unsure ??= 'a semicolon inside parentheses';
    if (token.kind === 'comment') continue;
    code = true;
    if (token.kind === 'open') parens++;
    else if (token.kind === 'close' && parens > 0) parens--;
    const word = token.kind === 'word' ? sql.slice(token.start, token.end).toLowerCase() : '';
    atomicBody ||= lastWord === 'begin' && word === 'atomic';
    lastWord = word;
  }
  if (code) statements.push(sql.slice(start).trim());
  return { statements, unsure, refused: lexed.refused, atomicBody };
}

/**
 * Splits SQL text into statements at top-level semicolons (not inside quotes,
 * dollar-quoted bodies, comments or parentheses); empty statements are dropped.
 */
export function splitStatements(sql: string, options: LexOptions = {}): string[] {
  return [...readStatements(sql, options).statements];
}
