import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type ConnectionKeyword,
  type ConnectionKeywords,
  ConnectionStringError,
  checkValues,
  connectionUrl,
  parseConnectionString,
} from '../ports/connection-string.js';
import { matchPgpass, readPgpass } from './pgpass.js';

/** Where a node's connection takes what its connection string does not say. */
export interface ResolveOptions {
  /** `PG*` defaults and `PGPASSFILE` (default: the process's environment). */
  readonly env?: NodeJS.ProcessEnv;
  /** The home directory holding `.pgpass` and `.postgresql/` (default: the user's). */
  readonly home?: string;
  /** libpq's default user name (default: the OS user's). */
  readonly osUser?: string;
  /** The node's `passwordFile`: a file holding only its password (a mounted secret). */
  readonly passwordFile?: string;
}

/** The `PG*` variables libpq takes as defaults, by keyword (PGPASSWORD is a password source, below). */
const ENV_DEFAULTS: ReadonlyArray<readonly [ConnectionKeyword, string]> = [
  ['host', 'PGHOST'],
  ['port', 'PGPORT'],
  ['user', 'PGUSER'],
  ['dbname', 'PGDATABASE'],
  ['sslmode', 'PGSSLMODE'],
  ['sslrootcert', 'PGSSLROOTCERT'],
  ['sslcert', 'PGSSLCERT'],
  ['sslkey', 'PGSSLKEY'],
  ['passfile', 'PGPASSFILE'],
];

/**
 * Resolves a node's connection string once, at configuration load, into the
 * canonical URL lockstep passes around (`connectionUrl`): the string's own
 * parameters, then the `PG*` variables, then libpq's defaults (host
 * `localhost`, port 5432, the OS user, a database named after the user,
 * `sslmode=prefer`, certificates from `~/.postgresql/` when present). The
 * password comes, in this order, from `passwordFile`, the string, `PGPASSWORD`,
 * or the password file (`passfile`, `PGPASSFILE`, `~/.pgpass`). Throws
 * {@link ConnectionStringError}, whose message never holds a password.
 */
export function resolveConnection(text: string, options: ResolveOptions = {}): string {
  const env = options.env ?? process.env;
  const home = options.home ?? os.homedir();
  const given = parseConnectionString(text);
  const keywords: ConnectionKeywords = { ...given };
  for (const [keyword, variable] of ENV_DEFAULTS) {
    const value = env[variable];
    if (keywords[keyword] === undefined && value) keywords[keyword] = value;
  }
  try {
    checkValues(keywords);
  } catch (error) {
    throw new ConnectionStringError(`${(error as Error).message} (from the PG* variables)`);
  }
  keywords.host ??= 'localhost';
  keywords.port ??= '5432';
  keywords.user ??= options.osUser ?? osUserName(env);
  keywords.dbname ??= keywords.user;
  keywords.sslmode ??= 'prefer';
  keywords.password = password(keywords, given.password, options.passwordFile, env, home);
  certificates(keywords, home);
  // lockstep names its own sessions (it finds them by application_name); a passfile is read here.
  const { passfile: _passfile, application_name: _name, ...resolved } = keywords;
  return connectionUrl(resolved);
}

/** libpq's default user: the OS user (a container's uid may have no passwd entry: then USER). */
function osUserName(env: NodeJS.ProcessEnv): string {
  try {
    return os.userInfo().username;
  } catch {
    if (env.USER) return env.USER;
    throw new ConnectionStringError('no user: name one in the connection string or PGUSER');
  }
}

function password(
  keywords: ConnectionKeywords,
  inString: string | undefined,
  passwordFile: string | undefined,
  env: NodeJS.ProcessEnv,
  home: string,
): string | undefined {
  if (passwordFile !== undefined) {
    if (inString !== undefined) {
      throw new ConnectionStringError(
        'a password both in the connection string and in passwordFile: keep one',
      );
    }
    return readPasswordFile(passwordFile);
  }
  if (inString !== undefined) return inString;
  if (env.PGPASSWORD) return env.PGPASSWORD;
  const file = keywords.passfile ?? path.join(home, '.pgpass');
  return matchPgpass(readPgpass(file), {
    host: keywords.host as string,
    port: keywords.port as string,
    database: keywords.dbname as string,
    user: keywords.user as string,
  });
}

/** A mounted secret's content; the one line end editors and `echo` add is not part of it. */
export function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConnectionStringError(
      `cannot read passwordFile ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new ConnectionStringError(`passwordFile ${file} is empty`);
  return secret;
}

/**
 * libpq's certificate files: `~/.postgresql/root.crt`, `postgresql.crt` and
 * `postgresql.key` when not named and present; named ones must be readable.
 * `sslrootcert=system` (the system's CAs) only makes sense with verify-full.
 */
function certificates(keywords: ConnectionKeywords, home: string): void {
  const defaults = [
    ['sslrootcert', 'root.crt'],
    ['sslcert', 'postgresql.crt'],
    ['sslkey', 'postgresql.key'],
  ] as const;
  for (const [keyword, name] of defaults) {
    const file = path.join(home, '.postgresql', name);
    if (keywords[keyword] === undefined && existsSync(file)) keywords[keyword] = file;
  }
  const { sslmode, sslrootcert, sslcert, sslkey } = keywords;
  if (sslmode === 'disable') {
    delete keywords.sslrootcert;
    delete keywords.sslcert;
    delete keywords.sslkey;
    return;
  }
  if (sslrootcert === 'system' && sslmode !== 'verify-full') {
    throw new ConnectionStringError('sslrootcert=system needs sslmode=verify-full');
  }
  if (sslmode === 'verify-ca' && sslrootcert === undefined) {
    throw new ConnectionStringError(
      'sslmode=verify-ca needs sslrootcert: the CA certificate that signed the server certificate',
    );
  }
  if ((sslcert === undefined) !== (sslkey === undefined)) {
    throw new ConnectionStringError(
      'sslcert and sslkey go together (a client certificate and its key)',
    );
  }
  for (const keyword of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const file = keywords[keyword];
    if (file === undefined || (keyword === 'sslrootcert' && file === 'system')) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (error) {
      throw new ConnectionStringError(
        `cannot read ${keyword} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
  }
}
