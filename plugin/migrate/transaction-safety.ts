import { codeOnly } from '../protocol/index.js';

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
