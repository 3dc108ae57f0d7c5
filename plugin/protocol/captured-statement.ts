import { lexSql } from './sql-lexer.js';
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

/**
 * The statement a replica runs for a captured DDL event, or why it refuses.
 * The lexer follows PostgreSQL's scanner, and each rule below makes a
 * difference left between the two fail closed rather than run something the
 * primary did not:
 *  - text PostgreSQL would refuse or could read otherwise is refused (`unsure`);
 *  - a query string is lexed once, before any of its statements runs, with
 *    the standard_conforming_strings of that moment, while the trigger
 *    records the setting when its statement runs (a `SET` earlier in the
 *    string changes it): a multi-statement string must cut the same way under
 *    both settings (or be text PostgreSQL refuses under the other one), and
 *    its DDL statement must not hold a literal whose value depends on the
 *    setting;
 *  - psql's heuristic for `BEGIN ATOMIC … END` bodies is not the server's
 *    grammar: such a body only in a string holding that one statement;
 *  - the chosen statement must be exactly one statement and of the primary's tag.
 */
export function chooseCapturedStatement(ddl: CapturedDdl): CapturedChoice {
  const recorded = ddl.standardConformingStrings;
  const scs = recorded ?? true;
  const split = readStatements(ddl.command, { standardConformingStrings: scs });
  if (split.unsure)
    return { refused: `PostgreSQL may read the query string otherwise (${split.unsure})` };
  const several = split.statements.length > 1;
  if (several) {
    const other = readStatements(ddl.command, { standardConformingStrings: !scs });
    // Text PostgreSQL refuses under the other setting was not lexed with it: it ran.
    if (
      !other.refused &&
      (other.unsure || other.statements.join('\0') !== split.statements.join('\0'))
    )
      return {
        refused: 'its statements cut differently with standard_conforming_strings on and off',
      };
    if (split.atomicBody)
      return {
        refused: 'a BEGIN ATOMIC routine body shares its query string with other statements',
      };
  }
  const statement = capturedStatement(ddl.command, ddl.ordinal, { standardConformingStrings: scs });
  if (statement === null)
    return { refused: `DDL statement ${ddl.ordinal} not found in the captured query string` };
  if (ddl.tag && !matchesCommandTag(statement, ddl.tag, { standardConformingStrings: scs }))
    return { refused: `the statement found is not the ${ddl.tag} the primary ran` };
  // Only a lone statement run with the setting recorded is sure to be read as the primary read it.
  if ((several || recorded !== true) && readsBySetting(statement))
    return {
      refused:
        'a plain string literal holds a backslash, and the standard_conforming_strings it was read with is not known',
    };
  return { statement, standardConformingStrings: scs };
}
