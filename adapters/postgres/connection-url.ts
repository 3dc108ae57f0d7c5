import type { ClientConfig } from 'pg';

/** Replaces the password of a Postgres URL with `***`; for logs and messages. */
export function redactUrl(url: string): string {
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

/** Removes every occurrence of the URL's password from a text (e.g. a driver's error message). */
export function scrubSecrets(text: string, url: string): string {
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    return text;
  }
  return password ? text.split(password).join('***') : text;
}

/**
 * A `pg` client configuration for a node's URL, with lockstep's application
 * name. Nothing waits without bound on the network: a connect timeout, and
 * TCP keepalives so a peer that vanished is noticed by the kernel (a peer
 * that answers TCP but not queries is the apply deadline's job).
 */
export function clientConfig(
  url: string,
  applicationName = 'lockstep',
  /** For control connections (short queries only): a query unanswered this long fails. */
  queryTimeoutMs?: number,
): ClientConfig {
  return {
    connectionString: url,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(queryTimeoutMs ? { query_timeout: queryTimeoutMs } : {}),
  };
}

/** Raises a session's `synchronous_commit` to `local` where the server's default is `off`; never lowers it. */
export const AT_LEAST_LOCAL_COMMIT = `SELECT set_config('synchronous_commit', 'local', false)
  WHERE current_setting('synchronous_commit') = 'off'`;

/** The query deadline of control connections (decisions, status, locks, phase two). */
export const CONTROL_QUERY_TIMEOUT_MS = 30_000;

/** A copy of a driver error without the URL's password, keeping its SQLSTATE `code`. */
export function scrubbedError(error: unknown, url: string): Error & { code?: string } {
  const e = error as Error & { code?: string };
  const scrubbed = new Error(scrubSecrets(e?.message ?? String(error), url)) as Error & {
    code?: string;
  };
  scrubbed.code = e?.code;
  return scrubbed;
}
