/**
 * libpq's keyword/value connection strings (`host=db dbname=app password='a b'`),
 * read and written by libpq's rules (conninfo_parse): pairs separated by
 * white space, white space allowed around `=`, a value either bare or in
 * single quotes, and a backslash escaping the next character (`\'`, `\\`).
 */

/** A keyword DSN that libpq would refuse too; its message never quotes a value (it may be a password). */
export class DsnSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DsnSyntaxError';
  }
}

const SPACE = /\s/;

/** True when `text` reads as a keyword DSN rather than a URL (it has a `keyword=` and no `scheme://`). */
export function looksLikeKeywordDsn(text: string): boolean {
  return /^\s*[A-Za-z_]+\s*=/.test(text) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim());
}

/**
 * The keyword/value pairs of a DSN, in order. A keyword given twice keeps its
 * last value, as in libpq. Keywords are not checked here.
 */
export function parseKeywordDsn(text: string): Map<string, string> {
  const pairs = new Map<string, string>();
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && SPACE.test(text[i] as string)) i++;
  };
  for (skipSpace(); i < text.length; skipSpace()) {
    const keywordStart = i;
    while (i < text.length && text[i] !== '=' && !SPACE.test(text[i] as string)) i++;
    const keyword = text.slice(keywordStart, i);
    skipSpace();
    if (text[i] !== '=') {
      throw new DsnSyntaxError(`missing "=" after the keyword at character ${keywordStart + 1}`);
    }
    if (keyword === '') throw new DsnSyntaxError(`a "=" without a keyword at character ${i + 1}`);
    i++;
    skipSpace();
    const [value, end] = text[i] === "'" ? quotedValue(text, i + 1) : bareValue(text, i);
    pairs.set(keyword, value);
    i = end;
  }
  return pairs;
}

/** A bare value: up to the next white space; a backslash takes the next character literally. */
function bareValue(text: string, start: number): [string, number] {
  let value = '';
  let i = start;
  while (i < text.length && !SPACE.test(text[i] as string)) {
    if (text[i] === '\\') i++; // a lone backslash at the end is dropped, as libpq does
    value += text[i] ?? '';
    i++;
  }
  return [value, i];
}

/** A quoted value: up to the next unescaped quote. */
function quotedValue(text: string, start: number): [string, number] {
  let value = '';
  for (let i = start; i < text.length; i++) {
    if (text[i] === "'") return [value, i + 1];
    if (text[i] === '\\') i++;
    value += text[i] ?? '';
  }
  throw new DsnSyntaxError("a quoted value is not closed (a missing ')");
}

/** One value as libpq reads it back: bare when it can be, else quoted with `\'` and `\\`. */
export function quoteDsnValue(value: string): string {
  if (value !== '' && !/[\s'\\]/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Writes keyword/value pairs as a DSN that {@link parseKeywordDsn} (and libpq) reads back unchanged. */
export function formatKeywordDsn(pairs: Iterable<readonly [string, string]>): string {
  return [...pairs].map(([keyword, value]) => `${keyword}=${quoteDsnValue(value)}`).join(' ');
}
