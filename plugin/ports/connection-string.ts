import { DsnSyntaxError, looksLikeKeywordDsn, parseKeywordDsn } from './keyword-dsn.js';

/**
 * The libpq connection parameters lockstep understands, in a URL's query or
 * a keyword DSN. Any other keyword is refused (as libpq refuses an unknown
 * one) rather than silently ignored.
 */
export const CONNECTION_KEYWORDS = [
  'host',
  'port',
  'dbname',
  'user',
  'password',
  'passfile',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'connect_timeout',
  'options',
  'application_name',
] as const;

export type ConnectionKeyword = (typeof CONNECTION_KEYWORDS)[number];

/** A node's connection parameters, by libpq keyword; absent means "not said". */
export type ConnectionKeywords = Partial<Record<ConnectionKeyword, string>>;

/** libpq's `sslmode` values, from least to most protection. */
export const SSL_MODES = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
] as const;

export type SslMode = (typeof SSL_MODES)[number];

/** A connection string lockstep cannot use; the message never quotes a value. */
export class ConnectionStringError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionStringError';
  }
}

const KNOWN = new Set<string>(CONNECTION_KEYWORDS);

/** A URL's or a DSN's own spellings of a keyword (pg's and JDBC-style names users copy). */
const HINTS: Record<string, string> = {
  ssl: 'use sslmode (require, verify-full, …)',
  database: 'the keyword is dbname',
  username: 'the keyword is user',
  uselibpqcompat: 'lockstep always reads sslmode with libpq meanings; leave it out',
};

/** Reads a `postgres://` URL or a keyword DSN into its parameters; throws {@link ConnectionStringError}. */
export function parseConnectionString(text: string): ConnectionKeywords {
  const pairs = /^\s*postgres(ql)?:\/\//i.test(text)
    ? urlPairs(text.trim())
    : looksLikeKeywordDsn(text)
      ? dsnPairs(text)
      : null;
  if (!pairs) {
    throw new ConnectionStringError(
      'a postgres:// or postgresql:// URL, or a keyword DSN such as "host=db dbname=app"',
    );
  }
  const keywords: ConnectionKeywords = {};
  for (const [key, value] of pairs) {
    if (!KNOWN.has(key)) {
      const hint = HINTS[key.toLowerCase()];
      throw new ConnectionStringError(
        `unknown connection parameter "${key}"${hint ? ` (${hint})` : ''}; known: ${CONNECTION_KEYWORDS.join(', ')}`,
      );
    }
    keywords[key as ConnectionKeyword] = value;
  }
  checkValues(keywords);
  return keywords;
}

function dsnPairs(text: string): Map<string, string> {
  try {
    return parseKeywordDsn(text);
  } catch (error) {
    if (error instanceof DsnSyntaxError) throw new ConnectionStringError(error.message);
    throw error;
  }
}

/** libpq's URI form: `postgresql://[user[:password]@][host][:port][/dbname][?keyword=value&…]`. */
function urlPairs(text: string): Map<string, string> {
  // libpq's host lists (`h1:5432,h2:5432`) are for failover, which lockstep does not do.
  if (/^[^:]+:\/\/[^/?#]*,/.test(text)) {
    throw new ConnectionStringError(
      'one host per node (several hosts in one URL are not supported)',
    );
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConnectionStringError(
      'a URL that does not parse (special characters must be %-encoded)',
    );
  }
  const pairs = new Map<string, string>();
  const decode = (part: string, what: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConnectionStringError(`the ${what} in the URL has a bad %-escape`);
    }
  };
  const host = decode(url.hostname.replace(/^\[(.*)\]$/, '$1'), 'host');
  if (host) pairs.set('host', host);
  if (url.port) pairs.set('port', url.port);
  if (url.username) pairs.set('user', decode(url.username, 'user'));
  if (url.password) pairs.set('password', decode(url.password, 'password'));
  const dbname = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (dbname) pairs.set('dbname', dbname);
  // Query parameters override the parts above, as in libpq; only %-escapes are
  // decoded (a `+` stays a plus sign: libpq is no HTML form).
  for (const param of url.search.replace(/^\?/, '').split('&')) {
    if (param === '') continue;
    const eq = param.indexOf('=');
    if (eq < 0) throw new ConnectionStringError('a URL query parameter without "="');
    pairs.set(decode(param.slice(0, eq), 'query'), decode(param.slice(eq + 1), 'query'));
  }
  return pairs;
}

/** Refuses values libpq would refuse (the message names the keyword, never the value). */
export function checkValues(keywords: ConnectionKeywords): void {
  const { sslmode, port, connect_timeout: timeout } = keywords;
  if (sslmode !== undefined && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new ConnectionStringError(`sslmode must be one of ${SSL_MODES.join(', ')}`);
  }
  if (port !== undefined && !/^\d{1,5}$/.test(port)) {
    throw new ConnectionStringError('port must be a number');
  }
  // Nothing waits without bound (DESIGN.md), so libpq's 0 ("for ever") is refused.
  if (timeout !== undefined && !/^[1-9]\d*$/.test(timeout)) {
    throw new ConnectionStringError('connect_timeout must be a positive number of seconds');
  }
}

/**
 * The one form lockstep passes a resolved connection around in: a
 * `postgres://` URL with every part %-encoded and the rest of the
 * parameters in its query. A host that is a Unix socket directory goes
 * %-encoded in the host part, and reads back as a path.
 */
export function connectionUrl(keywords: ConnectionKeywords): string {
  const enc = encodeURIComponent;
  const { host = '', port, user, password, dbname, ...rest } = keywords;
  const hostPart = host.includes(':') ? `[${host}]` : enc(host);
  const auth = user !== undefined ? `${enc(user)}${password ? `:${enc(password)}` : ''}@` : '';
  const query = Object.entries(rest)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${key}=${enc(value)}`)
    .join('&');
  return `postgres://${auth}${hostPart}${port ? `:${port}` : ''}/${enc(dbname ?? '')}${query ? `?${query}` : ''}`;
}
