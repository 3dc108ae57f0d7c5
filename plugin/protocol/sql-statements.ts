/**
 * SQL text, read without a parser: what lockstep needs to know of statements
 * it did not write (migrations, DDL captured on the primary). Pure.
 */

/** The SQL text with comments, string literals and dollar-quoted bodies blanked out. */
export function codeOnly(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const end = skipLiteral(sql, i);
    if (end === null) {
      out += sql[i];
      i++;
    } else {
      const ch = sql[i];
      out += ch === "'" ? "''" : ch === '"' ? '""' : ' ';
      i = end;
    }
  }
  return out;
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

/**
 * Where the quoted string, comment or dollar-quoted body starting at `i`
 * ends, as PostgreSQL's lexer reads it (backslash escapes in `E'…'` strings,
 * nested block comments); null when `i` starts none of them.
 */
function skipLiteral(sql: string, i: number): number | null {
  const ch = sql[i] as string;
  if (ch === "'" || ch === '"') {
    // An E'' string: its backslashes escape (a quote too); a plain one only doubles quotes.
    const escaped = ch === "'" && /[eE]/.test(sql[i - 1] ?? '') && !/[\w$]/.test(sql[i - 2] ?? '');
    for (let j = i + 1; j < sql.length; j++) {
      if (escaped && sql[j] === '\\') j++;
      else if (sql[j] === ch) {
        if (sql[j + 1] === ch) j++;
        else return j + 1;
      }
    }
    return sql.length;
  }
  if (sql.startsWith('--', i)) {
    const nl = sql.indexOf('\n', i);
    return nl === -1 ? sql.length : nl + 1;
  }
  if (sql.startsWith('/*', i)) {
    let depth = 0;
    for (let j = i; j < sql.length; j++) {
      if (sql.startsWith('/*', j)) {
        depth++;
        j++;
      } else if (sql.startsWith('*/', j)) {
        depth--;
        j++;
        if (depth === 0) return j + 1;
      }
    }
    return sql.length;
  }
  if (ch === '$' && !/[\w$]/.test(sql[i - 1] ?? '')) {
    const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
    if (!tag) return null;
    const end = sql.indexOf(tag[0], i + tag[0].length);
    return end === -1 ? sql.length : end + tag[0].length;
  }
  return null;
}

/**
 * Splits SQL text into statements at top-level semicolons (not inside quotes,
 * dollar-quoted bodies or comments); empty statements are dropped.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const push = (end: number) => {
    const text = sql.slice(start, end).trim();
    if (text && codeOnly(text).trim()) out.push(text);
  };
  while (i < sql.length) {
    const skipped = skipLiteral(sql, i);
    if (skipped !== null) i = skipped;
    else if (sql[i] === ';') {
      push(i);
      start = ++i;
    } else i++;
  }
  push(sql.length);
  return out;
}

/** Statements an event trigger reports at ddl_command_end and lockstep's capture sends (see ddl-capture.ts). */
const CAPTURED =
  /^(create|alter|drop|comment|grant|revoke|security\s+label|import\s+foreign\s+schema|refresh\s+materialized\s+view)\b/;
const NOT_CAPTURED =
  /^(create|alter|drop)\s+(database|role|user|group|tablespace|event\s+trigger|publication|subscription)\b|^(grant|revoke)\b(?![\s\S]*\bon\b)/;

/**
 * The DDL statement a capture message stands for: the whole text when it is
 * one statement, else the `ordinal`-th captured DDL statement of a
 * multi-statement query string (its other statements reach the replica through
 * the stream, or are transaction control). Null when it cannot be found.
 */
export function capturedStatement(command: string, ordinal: number): string | null {
  const statements = splitStatements(command);
  if (statements.length <= 1) return ordinal === 1 ? (statements[0] ?? null) : null;
  const ddl = statements.filter((st) => {
    const lower = codeOnly(st).trim().replace(/\s+/g, ' ').toLowerCase();
    return CAPTURED.test(lower) && !NOT_CAPTURED.test(lower);
  });
  return ddl[ordinal - 1] ?? null;
}

/**
 * Whether `statement` is one the event trigger could have reported with
 * `tag` (`CREATE TABLE`, `ALTER INDEX`, …): the tag's words appear in order
 * among its first words (`CREATE UNLOGGED TABLE IF NOT EXISTS` is a `CREATE
 * TABLE`). A replica runs a captured statement only when it matches, so a
 * lexing difference can never make it run a statement the primary did not.
 */
export function matchesCommandTag(statement: string, tag: string): boolean {
  const words = codeOnly(statement)
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
  return splitStatements(statement).length === 1;
}
