import { type LexOptions, lexSql } from './sql-lexer.js';

/**
 * Whether PostgreSQL fires lockstep's ddl_command_end trigger for a
 * statement (so it counts in the capture's ordinal), read from its words
 * without a parser. Pure. `unsure` where the words cannot tell: a replica
 * then refuses a multi-statement string rather than count wrong.
 */
export type DdlFiring = 'fires' | 'silent' | 'unsure';

const DDL_VERB =
  /^(create|alter|drop|comment|grant|revoke|security label|import foreign schema|refresh materialized view)\b/;
// Primary-only or global objects: no trigger, or one the capture does not count.
const NO_TRIGGER =
  /^(create|alter|drop) (database|role|user(?! mapping (for|if)\b)|group|tablespace|event trigger|publication|subscription)\b|^alter system\b/;
// Global objects (EventTriggerSupportsObjectType false): GRANT/REVOKE/COMMENT/SECURITY LABEL fire nothing.
const GLOBAL_OBJECT =
  /^(grant|revoke) [^;]*?\bon (database|tablespace|parameter) (?!to\b|from\b|,)\S|^(comment|security label( for \S+)?) on (database|tablespace|role|event trigger)\b/;
// RESET ALL and a SET or RESET of lockstep's own setting restart the count as well.
const RESTARTS_COUNT =
  /^(commit|end|rollback|abort|prepare transaction|reset all|reset lockstep)\b|^set( local| session)? lockstep\b/;

/** The statement's words with literals, quoted names and comments blanked, lower case, one space apart. */
function words(
  statement: string,
  options: LexOptions,
): { text: string; topInto: boolean; anyInto: boolean } {
  let depth = 0;
  let topInto = false;
  let anyInto = false;
  const parts: string[] = [];
  for (const token of lexSql(statement, options).tokens) {
    if (token.kind === 'comment') continue;
    if (token.kind === 'open') depth++;
    if (token.kind === 'close') depth--;
    const raw = statement.slice(token.start, token.end).toLowerCase();
    // `AS into` is a column alias, not SELECT … INTO: unsure, never counted as firing.
    if (token.kind === 'word' && raw === 'into') {
      anyInto = true;
      topInto ||= depth === 0 && parts.at(-1) !== 'as';
    }
    parts.push(
      token.kind === 'string' || token.kind === 'quoted' || token.kind === 'dollar' ? '_' : raw,
    );
  }
  return { text: parts.join(' '), topInto, anyInto };
}

/** Whether the capture's trigger counts `statement` (see ddl-capture.ts). */
export function ddlFiring(statement: string, options: LexOptions = {}): DdlFiring {
  const { text, topInto, anyInto } = words(statement, options);
  if (DDL_VERB.test(text)) {
    // GRANT role TO role (no ON) is a global object too.
    if (/^(grant|revoke)\b/.test(text) && !/\bon\b/.test(text)) return 'silent';
    return NO_TRIGGER.test(text) || GLOBAL_OBJECT.test(text) ? 'silent' : 'fires';
  }
  // SELECT … INTO creates a table: tag SELECT INTO, which fires.
  if (/^select\b/.test(text) && anyInto) return topInto ? 'fires' : 'unsure';
  if (/^(with|\(|explain|execute)/.test(text) && anyInto) return 'unsure';
  return 'silent';
}

/** Whether `statement` ends or rolls back a transaction (or a subtransaction) or resets settings: the capture's count restarts. */
export function restartsCount(statement: string, options: LexOptions = {}): boolean {
  return RESTARTS_COUNT.test(words(statement, options).text);
}

/** The statement's first word, lower case, comments skipped (the words ddlFiring reads). */
export function leadingWord(statement: string, options: LexOptions = {}): string {
  return words(statement, options).text.split(' ')[0] ?? '';
}
