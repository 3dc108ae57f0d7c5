/**
 * SQL text cut into tokens the way PostgreSQL's scanner (scan.l) reads it,
 * as far as statement boundaries depend on it: comments, string literals of
 * every kind, quoted identifiers, dollar-quoted bodies, identifiers (so that
 * `a$b$` is a name, not a dollar quote) and numbers. Pure. Where the text
 * is one PostgreSQL would refuse, or one whose reading could differ between
 * server versions, the result says so (`unsure`): a caller that must not
 * guess fails closed on it.
 */

/** The scanner setting that changes how a plain `'…'` string reads (a backslash escapes when off). */
export interface LexOptions {
  readonly standardConformingStrings?: boolean;
}

export type TokenKind =
  | 'word'
  | 'string'
  | 'quoted'
  | 'dollar'
  | 'comment'
  | 'number'
  | 'param'
  | 'semicolon'
  | 'open'
  | 'close'
  | 'other';

export interface Token {
  readonly kind: TokenKind;
  readonly start: number;
  readonly end: number;
}

export interface Lexed {
  readonly tokens: readonly Token[];
  /** Why PostgreSQL may read the text differently (it would refuse it, or versions differ); null when exact. */
  readonly unsure: string | null;
  /** Whether PostgreSQL refuses the text outright (an unterminated literal, `U&''` with scs off): it never ran. */
  readonly refused: boolean;
}

/** How backslashes and doubled quotes read inside a string literal. */
type StringMode = 'escape' | 'plain' | 'bits';

// scan.l: ident_start [A-Za-z\200-\377_], ident_cont adds [0-9\$]. Every UTF-16 unit >= 0x80
// comes from bytes >= 0x80 in the server encoding.
const isIdentStart = (c: string | undefined) =>
  c !== undefined && (/[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80);
const isIdentCont = (c: string | undefined) =>
  c !== undefined && (isIdentStart(c) || /[0-9$]/.test(c));

const DOLLAR_DELIMITER = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/y;
const PARAM = /\$[0-9]+/y;
// Integers (PostgreSQL 16 adds 0x/0o/0b and underscores), decimals, reals; `1..2` is 1 then `..`.
const NUMBER =
  /0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+|(?:[0-9][0-9_]*(?:\.(?!\.)[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?/y;
// scan.l quotecontinue: a quote, whitespace holding a newline, a quote: one literal continued.
const QUOTE_CONTINUE = /(?:[ \t\f]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]+|--[^\n\r]*[\n\r])*'/y;
const WHITESPACE = /[ \t\n\r\f\v]+/y;

function stickyMatch(re: RegExp, sql: string, at: number): string | null {
  re.lastIndex = at;
  return re.exec(sql)?.[0] ?? null;
}

/** The end of a string literal whose content starts at `at` (after its opening quote); -1 unterminated. */
function stringEnd(sql: string, at: number, mode: StringMode): number {
  let j = at;
  while (j < sql.length) {
    const c = sql[j];
    if (c === '\\' && mode === 'escape') j += 2;
    else if (c !== "'") j++;
    else if (mode !== 'bits' && sql[j + 1] === "'") j += 2;
    else {
      const more = stickyMatch(QUOTE_CONTINUE, sql, j + 1);
      if (more === null) return j + 1;
      j += 1 + more.length;
    }
  }
  return -1;
}

/** The end of a block comment starting at `at` (they nest); -1 unterminated. */
function commentEnd(sql: string, at: number): number {
  let depth = 0;
  let j = at;
  while (j < sql.length) {
    if (sql.startsWith('/*', j)) {
      depth++;
      j += 2;
    } else if (sql.startsWith('*/', j)) {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else j++;
  }
  return -1;
}

/** The end of a quoted identifier whose content starts at `at`; -1 unterminated. */
function quotedEnd(sql: string, at: number): number {
  for (let j = at; j < sql.length; j++) {
    if (sql[j] !== '"') continue;
    if (sql[j + 1] !== '"') return j + 1;
    j++;
  }
  return -1;
}

interface Scanned {
  readonly kind: TokenKind;
  /** -1: runs to the end of the text, unterminated. */
  readonly end: number;
  readonly unsure?: string;
  /** PostgreSQL refuses it (besides being unterminated). */
  readonly refused?: boolean;
}

/** A literal that starts with a letter (`E'…'`, `U&'…'`, `B'…'`, …), or null. */
function prefixedLiteral(sql: string, i: number, scs: boolean): Scanned | null {
  const two = sql.slice(i, i + 2).toLowerCase();
  const three = sql.slice(i, i + 3).toLowerCase();
  if (three === "u&'") {
    // A Unicode-escape string: no backslash escapes; PostgreSQL refuses it with scs off.
    const unsure = scs ? undefined : "a U&'' string with standard_conforming_strings off";
    return { kind: 'string', end: stringEnd(sql, i + 3, 'plain'), unsure, refused: !scs };
  }
  if (three === 'u&"') return { kind: 'quoted', end: quotedEnd(sql, i + 3) };
  if (two === "e'") return { kind: 'string', end: stringEnd(sql, i + 2, 'escape') };
  if (two === "n'") return { kind: 'string', end: stringEnd(sql, i + 2, scs ? 'plain' : 'escape') };
  if (two === "b'" || two === "x'") return { kind: 'string', end: stringEnd(sql, i + 2, 'bits') };
  return null;
}

function dollarOrParam(sql: string, i: number): Scanned {
  const delimiter = stickyMatch(DOLLAR_DELIMITER, sql, i);
  if (delimiter !== null) {
    const close = sql.indexOf(delimiter, i + delimiter.length);
    return { kind: 'dollar', end: close === -1 ? -1 : close + delimiter.length };
  }
  const param = stickyMatch(PARAM, sql, i);
  if (param !== null) return touching(sql, 'param', i + param.length);
  return { kind: 'other', end: i + 1 };
}

/** A number or parameter directly followed by a name or quote: an error or version-dependent. */
function touching(sql: string, kind: TokenKind, end: number): Scanned {
  const next = sql[end];
  const junk = isIdentCont(next) || next === "'" || next === '"';
  return { kind, end, unsure: junk ? 'a number touching a name or quote' : undefined };
}

function scanToken(sql: string, i: number, scs: boolean): Scanned {
  const c = sql[i] as string;
  if (sql.startsWith('--', i)) {
    const nl = sql.slice(i).search(/[\n\r]/);
    return { kind: 'comment', end: nl === -1 ? sql.length : i + nl };
  }
  if (sql.startsWith('/*', i)) return { kind: 'comment', end: commentEnd(sql, i) };
  if (c === "'") return { kind: 'string', end: stringEnd(sql, i + 1, scs ? 'plain' : 'escape') };
  if (c === '"') return { kind: 'quoted', end: quotedEnd(sql, i + 1) };
  if (c === '$') return dollarOrParam(sql, i);
  if (isIdentStart(c)) {
    const literal = prefixedLiteral(sql, i, scs);
    if (literal) return literal;
    let j = i + 1;
    while (isIdentCont(sql[j])) j++;
    return { kind: 'word', end: j };
  }
  const number = stickyMatch(NUMBER, sql, i);
  if (number !== null) return touching(sql, 'number', i + number.length);
  if (c === ';') return { kind: 'semicolon', end: i + 1 };
  if (c === '(') return { kind: 'open', end: i + 1 };
  if (c === ')') return { kind: 'close', end: i + 1 };
  return { kind: 'other', end: i + 1 };
}

/** Tokens of `sql`, whitespace left out. */
export function lexSql(sql: string, options: LexOptions = {}): Lexed {
  const scs = options.standardConformingStrings ?? true;
  const tokens: Token[] = [];
  let unsure: string | null = null;
  let refused = false;
  let i = 0;
  while (i < sql.length) {
    const space = stickyMatch(WHITESPACE, sql, i);
    if (space !== null) {
      i += space.length;
      continue;
    }
    const scanned = scanToken(sql, i, scs);
    const end = scanned.end === -1 ? sql.length : scanned.end;
    if (scanned.end === -1) unsure ??= `an unterminated ${scanned.kind}`;
    if (scanned.unsure) unsure ??= scanned.unsure;
    refused ||= scanned.end === -1 || scanned.refused === true;
    tokens.push({ kind: scanned.kind, start: i, end });
    i = end;
  }
  return { tokens, unsure, refused };
}
