import { type Lexed, type LexOptions, lexSql, type Token } from './sql-lexer.js';

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
   * Whether a statement holds a SQL-standard routine body (`BEGIN ATOMIC …
   * END`): the server's grammar, not its scanner, keeps its semicolons
   * inside, and the cut follows psql's heuristic for it (psqlscan.l).
   */
  readonly atomicBody: boolean;
}

/** psqlscan.l's begin_depth tracking: CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN … END. */
class RoutineBodyTracker {
  private leading: string[] = [];
  private words = 0;
  private begins = 0;
  private parens = 0;
  sawBegin = false;

  /** Whether a semicolon here ends the statement. */
  get atTop(): boolean {
    return this.begins === 0 && this.parens === 0;
  }

  get insideBody(): boolean {
    return this.begins > 0;
  }

  get insideParens(): boolean {
    return this.parens > 0;
  }

  token(kind: Token['kind'], text: string): void {
    if (kind === 'open') this.parens++;
    else if (kind === 'close' && this.parens > 0) this.parens--;
    else if (kind === 'word') this.word(text.toLowerCase());
  }

  private word(word: string): void {
    if (['create', 'function', 'procedure', 'or', 'replace'].includes(word) && this.words < 4)
      this.leading[this.words] = word[0] as string;
    this.words++;
    const [a, b, c, d] = this.leading;
    const routine =
      a === 'c' && (b === 'f' || b === 'p' || (b === 'o' && c === 'r' && (d === 'f' || d === 'p')));
    if (!routine || this.parens !== 0) return;
    if (word === 'begin') {
      this.begins++;
      this.sawBegin = true;
    } else if (word === 'case' && this.begins >= 1) this.begins++;
    else if (word === 'end' && this.begins > 0) this.begins--;
  }
}

/** Cuts `sql` into statements; see {@link Split}. */
export function readStatements(sql: string, options: LexOptions = {}): Split {
  const lexed = lexSql(sql, options);
  const statements: string[] = [];
  let unsure = lexed.unsure;
  let atomicBody = false;
  let start = 0;
  let code = false;
  let tracker = new RoutineBodyTracker();
  const push = (end: number) => {
    if (code) statements.push(sql.slice(start, end).trim());
    atomicBody ||= tracker.sawBegin;
  };
  for (const token of lexed.tokens) {
    if (token.kind === 'semicolon' && tracker.atTop) {
      push(token.start);
      start = token.end;
      code = false;
      tracker = new RoutineBodyTracker();
      continue;
    }
    // The server's grammar never accepts a semicolon inside parentheses: such text did not run.
    if (token.kind === 'semicolon' && tracker.insideParens)
      unsure ??= 'a semicolon inside parentheses';
    if (token.kind !== 'comment') code = true;
    tracker.token(token.kind, sql.slice(token.start, token.end));
  }
  if (tracker.insideBody) unsure ??= 'a BEGIN ATOMIC body without its END';
  push(sql.length);
  return { statements, unsure, refused: lexed.refused, atomicBody };
}

/**
 * Splits SQL text into statements at top-level semicolons (not inside quotes,
 * dollar-quoted bodies, comments or `BEGIN ATOMIC … END` bodies); empty
 * statements are dropped.
 */
export function splitStatements(sql: string, options: LexOptions = {}): string[] {
  return [...readStatements(sql, options).statements];
}
