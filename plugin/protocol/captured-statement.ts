import { ddlFiring, leadingWord, restartsCount } from './ddl-firing.js';
import { type LexOptions, lexSql } from './sql-lexer.js';
import { readStatements } from './sql-split.js';
import { capturedStatement, matchesCommandTag } from './sql-statements.js';

/** What the primary's capture recorded of one DDL statement (ddl-capture.ts). */
export interface CapturedDdl {
  /** The whole query string the statement was part of. */
  readonly command: string;
  /** Which captured DDL statement of the string it is, from 1. */
  readonly ordinal: number;
  /** The command tag the primary reported (absent in the oldest payloads). */
  readonly tag?: string;
  /** standard_conforming_strings when the trigger fired (absent in older payloads). */
  readonly standardConformingStrings?: boolean;
}

export type CapturedChoice =
  | { readonly statement: string; readonly standardConformingStrings: boolean }
  | { readonly refused: string };

/** Whether a plain `'…'` or `N'…'` literal of `statement` holds a backslash: its value depends on the setting. */
function readsBySetting(statement: string): boolean {
  return lexSql(statement).tokens.some((token) => {
    const text = statement.slice(token.start, token.end);
    return token.kind === 'string' && /^[nN]?'/.test(text) && text.includes('\\');
  });
}

/** Why a multi-statement string's captured statements cannot be counted as the trigger counted them, or null. */
function uncountable(statements: readonly string[], options: LexOptions): string | null {
  let ended = false;
  for (const statement of statements) {
    const firing = ddlFiring(statement, options);
    if (firing === 'unsure')
      return 'a statement of the query string may or may not fire the DDL trigger';
    // These end the transaction (or roll back a subtransaction) or reset the transaction-local
    // count the ordinal came from (ddl-firing.ts RESTARTS_COUNT).
    if (ended && firing === 'fires')
      return 'DDL follows a statement that restarts the count (COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION, RESET ALL, or a SET/RESET of a lockstep.* setting) in the query string';
    ended ||= restartsCount(statement, options);
  }
  return null;
}

/**
 * The statement a replica runs for a captured DDL event, or why it refuses.
 * The lexer follows PostgreSQL's scanner, and each rule below makes a
 * difference left between the two fail closed rather than run something the
 * primary did not:
 *  - text PostgreSQL would refuse or could read otherwise is refused (`unsure`);
 *  - a query string is lexed once, before any of it runs, with the
 *    standard_conforming_strings of that moment, while the trigger records
 *    the setting after its statement ran (the string, even the statement
 *    itself, may change it): a string holding a backslash must cut the same
 *    way under both settings (or be text PostgreSQL refuses under the other
 *    one), and, unless it is alone in its string with the setting recorded
 *    on, its DDL statement must not hold a literal whose value depends on it;
 *  - a `BEGIN ATOMIC` body is cut by the server's grammar, not its scanner;
 *  - the ordinal must be countable: every statement's firing known, no
 *    statement that restarts the count (ddl-firing.ts) before a DDL statement;
 *  - the chosen statement must be exactly one statement and of the primary's
 *    tag, and, among several, begin with the tag's verb.
 */
export function chooseCapturedStatement(ddl: CapturedDdl): CapturedChoice {
  const scs = ddl.standardConformingStrings ?? true;
  const options = { standardConformingStrings: scs };
  const split = readStatements(ddl.command, options);
  if (split.unsure)
    return { refused: `PostgreSQL may read the query string otherwise (${split.unsure})` };
  if (split.atomicBody)
    return {
      refused: 'a BEGIN ATOMIC routine body: its statements cannot be cut without a parser',
    };
  if (ddl.command.includes('\\')) {
    const other = readStatements(ddl.command, { standardConformingStrings: !scs });
    // Text PostgreSQL refuses under the other setting was not lexed with it: it ran.
    if (
      !other.refused &&
      (other.unsure ||
        other.atomicBody ||
        other.statements.join('\0') !== split.statements.join('\0'))
    )
      return {
        refused: 'its statements cut differently with standard_conforming_strings on and off',
      };
  }
  if (split.statements.length > 1) {
    const why = uncountable(split.statements, options);
    if (why) return { refused: why };
  }
  const statement = capturedStatement(ddl.command, ddl.ordinal, options);
  if (statement === null)
    return { refused: `DDL statement ${ddl.ordinal} not found in the captured query string` };
  if (ddl.tag && !matchesCommandTag(statement, ddl.tag, options))
    return { refused: `the statement found is not the ${ddl.tag} the primary ran` };
  // Among several, the tag's verb must lead the statement (`ALTER TABLE revoke …` is no REVOKE).
  if (
    ddl.tag &&
    split.statements.length > 1 &&
    leadingWord(statement, options) !== leadingWord(ddl.tag, options)
  )
    return { refused: `the statement found does not begin as the ${ddl.tag} the primary ran` };
  // A lone statement whose cut does not depend on the setting, recorded on, runs
  // with it: only a statement that itself turned the setting on after it was
  // lexed would read otherwise there, and then only its own literals' values,
  // never another statement. (A regex CHECK written '^\d+$' is common DDL.)
  const lone = split.statements.length === 1 && ddl.standardConformingStrings === true;
  if (!lone && readsBySetting(statement))
    return {
      refused:
        'a plain string literal holds a backslash, and the standard_conforming_strings it was read with is not known',
    };
  return { statement, standardConformingStrings: scs };
}
