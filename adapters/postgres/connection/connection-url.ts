import { scrubSecrets } from '../../../plugin/ports/connection-secrets.js';
import { parseConnectionString } from '../../../plugin/ports/connection-string.js';
import { failedNode, stampFailedNode } from '../../../plugin/ports/failed-node.js';
import { LibpqClient, type LibpqClientConfig } from './libpq-client.js';
import { tlsSettings } from './tls-options.js';

// The scrubbing helpers are the ports' (configuration messages use them too); re-exported for the adapters.
export { redactUrl, scrubSecrets } from '../../../plugin/ports/connection-secrets.js';

/** A node's `pg` configuration; pools made from it use {@link LibpqClient} too. */
export type NodeClientConfig = LibpqClientConfig & { readonly Client: typeof LibpqClient };

/** What the server gets asked for when it wants a password and none was given (pg would try ~/.pgpass itself, with a warning). */
function noPassword(): string {
  throw new Error(
    'the server asks for a password and none is set: give it in the connection string, a passwordFile, PGPASSWORD or ~/.pgpass',
  );
}

/**
 * connect_timeout (10 s by default; libpq's 0: for ever), and for a bounded
 * session at most its query deadline: a node frozen before it answers the
 * connection does not hold a bounded command (status, wait) past its deadline.
 */
function connectTimeoutMs(connectTimeout: string | undefined, queryTimeoutMs?: number): number {
  const configured = connectTimeout ? Number(connectTimeout) * 1000 : 10_000;
  if (!queryTimeoutMs) return configured;
  return configured > 0 ? Math.min(configured, queryTimeoutMs) : queryTimeoutMs;
}

/**
 * The `pg` client configuration of a node's connection (a URL or DSN as
 * resolveConnection made it), with lockstep's application name. Every part
 * is set explicitly, so pg fills none from PG* variables, never reads
 * ~/.pgpass, and never sees an sslmode (its own reading of `require` is
 * verify-full, with a warning): TLS follows libpq's sslmode meanings
 * (tls-options), negotiated with an SSLRequest as libpq does. Nothing
 * waits without bound on the network: a connect timeout, and TCP keepalives
 * so a peer that vanished is noticed by the kernel (a peer that answers TCP
 * but not queries is the apply deadline's job).
 */
export function clientConfig(
  url: string,
  applicationName = 'lockstep',
  /** For control connections (short queries only): a query unanswered this long fails. */
  queryTimeoutMs?: number,
  /** The node a failed query's error is stamped with (stampFailedNode). */
  node?: string,
): NodeClientConfig {
  const keywords = parseConnectionString(url);
  const tls = tlsSettings(keywords);
  return {
    Client: LibpqClient,
    host: keywords.host,
    port: keywords.port ? Number(keywords.port) : undefined,
    user: keywords.user,
    database: keywords.dbname,
    password: keywords.password ?? noPassword,
    ssl: tls.ssl,
    sslnegotiation: 'postgres',
    optionalTls: tls.optional,
    ...(keywords.options ? { options: keywords.options } : {}),
    application_name: applicationName,
    connectionTimeoutMillis: connectTimeoutMs(keywords.connect_timeout, queryTimeoutMs),
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(queryTimeoutMs ? { query_timeout: queryTimeoutMs } : {}),
    ...(node ? { node } : {}),
  };
}

/** Raises a session's `synchronous_commit` to `local` where the server's default is `off`; never lowers it. */
export const AT_LEAST_LOCAL_COMMIT = `SELECT set_config('synchronous_commit', 'local', false)
  WHERE current_setting('synchronous_commit') = 'off'`;

/**
 * The query deadline of control connections (decisions, status, locks, phase
 * two) when the composition root passes none: `controlTimeoutMs`'s default.
 */
export const CONTROL_QUERY_TIMEOUT_MS = 30_000;

/** A copy of a driver error without the URL's password, keeping its SQLSTATE `code`. */
export function scrubbedError(error: unknown, url: string): Error & { code?: string } {
  const e = error as Error & { code?: string };
  const scrubbed = new Error(scrubSecrets(e?.message ?? String(error), url)) as Error & {
    code?: string;
  };
  scrubbed.code = e?.code;
  // The node the failing connection stamped stays named for the CLI's safety net.
  const node = failedNode(error);
  return node ? stampFailedNode(scrubbed, node) : scrubbed;
}
