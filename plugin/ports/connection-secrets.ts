import { parseConnectionString } from './connection-string.js';
import { looksLikeKeywordDsn, parseKeywordDsn } from './keyword-dsn.js';

/** A keyword DSN's password value: bare (with `\` escapes) or quoted (closed or not). */
const DSN_PASSWORD = /(^|\s)(password\s*=\s*)('(?:[^'\\]|\\.)*(?:'|\\?$)|(?:[^\s\\]|\\.)*)/gi;

/** Replaces the password of a connection string (URL or keyword DSN) with `***`; for logs and messages. */
export function redactUrl(url: string): string {
  if (looksLikeKeywordDsn(url)) return url.replace(DSN_PASSWORD, '$1$2***');
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (key.toLowerCase() === 'password') parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@').replace(/(password=)[^&\s]*/gi, '$1***');
  }
}

/**
 * Removes every occurrence of a connection's password from a text (e.g. a
 * driver's error message). The connection is a URL or a keyword DSN; a
 * resolved one (resolveConnection) also carries a password that came from a
 * passwordFile, PGPASSWORD or a password file, so those are removed too.
 */
export function scrubSecrets(text: string, url: string): string {
  const password = passwordOf(url);
  if (!password) return text;
  return [password, encodeURIComponent(password)].reduce(
    (scrubbed, secret) => scrubbed.split(secret).join('***'),
    text,
  );
}

/** The password a connection string holds, if any; also of one lockstep would refuse (an unknown parameter). */
function passwordOf(url: string): string | undefined {
  try {
    return parseConnectionString(url).password;
  } catch {
    try {
      if (looksLikeKeywordDsn(url)) return parseKeywordDsn(url).get('password');
      const parsed = new URL(url);
      return parsed.searchParams.get('password') ?? decodeURIComponent(parsed.password);
    } catch {
      return undefined;
    }
  }
}
