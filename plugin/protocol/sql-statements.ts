/**
 * SQL text, read without a parser: what lockstep needs to know of statements
 * it did not write (migrations, DDL captured on the primary). Pure.
 */

/** The SQL text with comments, string literals and dollar-quoted bodies blanked out. */
export function codeOnly(sql: string): string {
  return sql
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?\$\1\$/g, ' ')
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:[^"]|"")*"/g, '""')
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ');
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
    const ch = sql[i] as string;
    const rest = sql.slice(i);
    if (ch === "'" || ch === '"') {
      const close = new RegExp(`${ch}(?:[^${ch}]|${ch}${ch})*${ch}`, 'y');
      close.lastIndex = i;
      i = close.exec(sql) ? close.lastIndex : sql.length;
    } else if (rest.startsWith('--')) {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? sql.length : nl + 1;
    } else if (rest.startsWith('/*')) {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if (ch === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? sql.length : end + tag[0].length;
      } else i++;
    } else if (ch === ';') {
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
  if (statements.length <= 1) return statements[0] ?? null;
  const ddl = statements.filter((st) => {
    const lower = codeOnly(st).trim().replace(/\s+/g, ' ').toLowerCase();
    return CAPTURED.test(lower) && !NOT_CAPTURED.test(lower);
  });
  return ddl[ordinal - 1] ?? null;
}
