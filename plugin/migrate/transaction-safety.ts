/** A statement a migration round cannot run, and what to do instead. */
export interface UnsafeStatement {
  readonly statement: string;
  readonly alternative: string;
}

/** Statements that cannot run inside a transaction, or cannot be part of a prepared one. */
const RULES: ReadonlyArray<{ pattern: RegExp; alternative: string }> = [
  {
    pattern: /^(create\s+(unique\s+)?index|drop\s+index|reindex\b.*)\s+concurrently\b/,
    alternative:
      'drop CONCURRENTLY (the plain form runs in the round, locking writes to the table while it builds), or run it on every node outside lockstep',
  },
  {
    pattern: /^refresh\s+materialized\s+view\s+concurrently\b/,
    alternative: 'drop CONCURRENTLY, or refresh outside lockstep on every node',
  },
  {
    pattern: /^(vacuum|cluster|checkpoint)\b/,
    alternative: 'run it on each node outside lockstep: it changes no replicated data',
  },
  {
    pattern: /^(create|drop|alter)\s+(database|tablespace)\b|^alter\s+system\b/,
    alternative: 'run it on each node outside lockstep',
  },
  {
    pattern:
      /^(begin|start\s+transaction|commit|end|rollback|abort|savepoint|release|prepare\s+transaction)\b/,
    alternative:
      'remove it: lockstep runs each migration in its own transaction and prepares it itself',
  },
  {
    pattern:
      /^create\s+(global\s+|local\s+)?(temp|temporary)\s+table\b|^(listen|unlisten|notify)\b/,
    alternative:
      'remove it: PostgreSQL cannot PREPARE a transaction that used temporary tables, LISTEN/UNLISTEN or NOTIFY',
  },
];

/** The SQL text with comments, string literals and dollar-quoted bodies blanked out. */
function codeOnly(sql: string): string {
  return sql
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?\$\1\$/g, ' ')
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:[^"]|"")*"/g, '""')
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ');
}

/**
 * The first statement of `sql` that a two-phase migration cannot run (it
 * needs to be outside a transaction, or makes the transaction impossible to
 * prepare), with the alternative; null when every statement can run.
 */
export function unsafeStatement(sql: string): UnsafeStatement | null {
  for (const raw of codeOnly(sql).split(';')) {
    const statement = raw.trim().replace(/\s+/g, ' ');
    if (!statement) continue;
    const lower = statement.toLowerCase();
    for (const rule of RULES) {
      if (rule.pattern.test(lower))
        return { statement: statement.slice(0, 120), alternative: rule.alternative };
    }
  }
  return null;
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
