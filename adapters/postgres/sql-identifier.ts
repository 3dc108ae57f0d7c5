import { escapeIdentifier, escapeLiteral } from 'pg';

/** Quotes one identifier (`Order` → `"Order"`, `drop table` → `"drop table"`). */
export function quoteIdent(name: string): string {
  return escapeIdentifier(name);
}

/** Quotes a schema-qualified name. */
export function quoteQualified(schema: string, name: string): string {
  return `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
}

/**
 * Quotes a string literal safely whatever the session's
 * standard_conforming_strings: a text holding a backslash becomes an E''
 * string with the backslash doubled (doubling quotes alone lets `\'` end the
 * literal where the setting is off, and the rest run as SQL).
 */
export function quoteLiteral(text: string): string {
  return escapeLiteral(text).trim();
}

const LOCKSTEP_OBJECT_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Validates a name lockstep gives to a slot or publication. Postgres restricts
 * slot names to this alphabet, and the replication protocol's START_REPLICATION
 * is built as text, so nothing else is ever accepted.
 */
export function assertObjectName(kind: string, name: string): string {
  if (!LOCKSTEP_OBJECT_NAME.test(name)) {
    throw new Error(
      `${kind} name ${JSON.stringify(name)} is not allowed: use 1-63 characters from [a-z0-9_], starting with a letter or _`,
    );
  }
  return name;
}
