import { readFileSync, statSync } from 'node:fs';

/**
 * libpq's password file (`~/.pgpass`, or `PGPASSFILE`):
 * `hostname:port:database:username:password` per line, each of the first four
 * a literal or `*` (anything), `\:` and `\\` for a colon or backslash inside a
 * field, `#` starting a comment line. The first matching line wins.
 */
export interface PgpassEntry {
  /** The four fields to match, unescaped; `null` is the `*` wildcard. */
  readonly fields: readonly [
    host: string | null,
    port: string | null,
    db: string | null,
    user: string | null,
  ];
  readonly password: string;
}

/** What a connection is matched on. */
export interface PgpassTarget {
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly user: string;
}

/** The lines of a password file that have all five fields (others can never match, as in libpq). */
export function parsePgpass(text: string): PgpassEntry[] {
  const entries: PgpassEntry[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.replace(/\r$/, '');
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fields = splitFields(trimmed);
    if (fields.length < 5) continue;
    const [host, port, db, user, password] = fields as [Field, Field, Field, Field, Field];
    entries.push({
      fields: [wild(host), wild(port), wild(db), wild(user)],
      // libpq's password ends at the next unescaped colon, like the other fields.
      password: password.value,
    });
  }
  return entries;
}

interface Field {
  readonly value: string;
  /** True when the field was exactly an unescaped `*`. */
  readonly star: boolean;
}

const wild = (field: Field): string | null => (field.star ? null : field.value);

function splitFields(line: string): Field[] {
  const fields: Field[] = [];
  let value = '';
  let raw = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      value += line[i + 1];
      raw += c + line[i + 1];
      i++;
    } else if (c === ':') {
      fields.push({ value, star: raw === '*' });
      value = '';
      raw = '';
    } else {
      value += c;
      raw += c;
    }
  }
  fields.push({ value, star: raw === '*' });
  return fields;
}

/** The password of the first entry matching the connection, if any. */
export function matchPgpass(
  entries: readonly PgpassEntry[],
  target: PgpassTarget,
): string | undefined {
  const wanted = [target.host, target.port, target.database, target.user];
  return entries.find((entry) => entry.fields.every((f, i) => f === null || f === wanted[i]))
    ?.password;
}

/**
 * The entries of a password file; none when it is missing, not a regular
 * file, or readable or writable by group or others — libpq ignores such a
 * file too (it prints a warning; lockstep prints nothing).
 */
export function readPgpass(file: string): PgpassEntry[] {
  try {
    const stat = statSync(file);
    if (!stat.isFile() || (stat.mode & 0o077) !== 0) return [];
    return parsePgpass(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}
