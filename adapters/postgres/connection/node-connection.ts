import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { clientConfig, redactUrl, scrubSecrets } from './connection-url.js';
import { LibpqClient } from './libpq-client.js';
import { endWhenDropped, lockWaitUnderMs } from './session-bounds.js';

/** Opens a client to a node, turning a failure into an error that names the node and the fix (never the password). */
export async function connectNode(
  node: string,
  url: string,
  applicationName = 'lockstep',
  queryTimeoutMs?: number,
): Promise<pg.Client> {
  let client: LibpqClient | null = null;
  try {
    // Inside the try: reading a certificate file named by the connection can fail too.
    client = new LibpqClient(clientConfig(url, applicationName, queryTimeoutMs, node));
    client.on('error', () => undefined);
    await client.connect();
    return client;
  } catch (error) {
    await client?.end().catch(() => undefined);
    throw unreachable(node, url, error);
  }
}

/**
 * {@link connectNode} for a session whose every query has a deadline: its
 * backend also ends once the client dropped it (PostgreSQL 14+, a deadline
 * passed on a frozen host), and it takes the session `settings` given. A
 * node that does not answer that setup is unreachable.
 */
export async function connectBounded(
  node: string,
  url: string,
  applicationName: string,
  queryTimeoutMs: number,
  settings: Readonly<Record<string, string>> = {},
): Promise<pg.Client> {
  const client = await connectNode(node, url, applicationName, queryTimeoutMs);
  const pairs = Object.entries(settings);
  const sets = pairs.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false), `).join('');
  try {
    await client.query(`SELECT ${sets}${endWhenDropped(false)}`, pairs.flat());
    return client;
  } catch (error) {
    dropClient(client);
    throw unreachable(node, url, error);
  }
}

/**
 * The settings of a bounded session that may wait on a lock: the wait ends
 * on the server a margin before the deadline (lockWaitUnderMs), with its own error, so a live node
 * that waits on a lock is not taken for one that does not answer.
 */
export const lockWaitWithin = (deadlineMs: number) => ({
  lock_timeout: `${lockWaitUnderMs(deadlineMs)}ms`,
});

/** The client's socket (not in @types/pg). */
function socketOf(client: pg.Client): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
}

/** Per client, the answers counted by {@link answersHeard}. */
const answers = new WeakMap<pg.Client, { count: number }>();

/**
 * Statements the server has answered on this client (each CommandComplete and
 * ReadyForQuery), counted from the first call: 0 without a client. Only
 * answers to what was sent count, never what a server may send unasked in
 * the middle of a statement (a NOTICE a trigger raises in a loop, a
 * ParameterStatus), so a statement that never ends stays silent.
 */
export function answersHeard(client: pg.Client | null): number {
  if (!client) return 0;
  let counted = answers.get(client);
  if (!counted) {
    const tally = { count: 0 };
    const connection = (client as unknown as { connection?: NodeJS.EventEmitter }).connection;
    for (const message of ['commandComplete', 'readyForQuery'])
      connection?.on(message, () => {
        tally.count++;
      });
    answers.set(client, tally);
    counted = tally;
  }
  return counted.count;
}

/**
 * Ends a client; should the server never acknowledge (a frozen host), its
 * socket is dropped after a few seconds instead of waiting for ever.
 */
export async function endClient(client: pg.Client): Promise<void> {
  const late = setTimeout(() => socketOf(client)?.destroy(), 5_000);
  await client.end().catch(() => undefined);
  clearTimeout(late);
}

/** Drops a client's socket at once and lets it end (a server that stopped answering is not waited for). */
export function dropClient(client: pg.Client): void {
  socketOf(client)?.destroy();
  void client.end().catch(() => undefined);
}

/** Node's TLS errors for a certificate that does not check out (OpenSSL's verify codes, and the host name's). */
const CERTIFICATE_REFUSED =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT(_LOCALLY)?)|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** What to do about a connection that failed, for the node's entry in the configuration. */
function connectionFix(node: string, error: { code?: string; message?: string }): string {
  const entry = node === 'primary' ? 'primary' : `replica "${node}"`;
  const message = error.message ?? '';
  if (error.code && CERTIFICATE_REFUSED.test(error.code)) {
    return `the server's certificate does not check out against ${entry}'s sslmode: point sslrootcert at the CA that signed it (verify-ca / verify-full; verify-full also needs the host name in the certificate), or use sslmode=require to encrypt without verifying`;
  }
  if (/does not support SSL/i.test(message)) {
    return `the server does not offer TLS: turn ssl on in its postgresql.conf, or lower sslmode for ${entry} (prefer encrypts when the server can)`;
  }
  if (error.code === '28000' && /no encryption/i.test(message)) {
    return `the server accepts only TLS connections: set sslmode=require (or verify-full with sslrootcert) for ${entry}`;
  }
  if (error.code === '28P01' || error.code === '28000' || /asks for a password/.test(message)) {
    return `check the user and password of ${entry} (connection string, passwordFile, PGPASSWORD or ~/.pgpass), and pg_hba.conf on that server`;
  }
  return `check that the server is running and reachable, and the connection of ${entry} in the configuration`;
}

/** The error for a node that cannot be reached or refuses the login. */
export function unreachable(node: string, url: string, error: unknown): LockstepError {
  const e = error as { code?: string; message?: string };
  const reason = scrubSecrets(e.message || e.code || String(error), url);
  return new LockstepError({
    node,
    setting: 'connection',
    sqlState: e.code,
    problem: `cannot connect to ${redactUrl(url)}: ${reason}`,
    fix: connectionFix(node, e),
  });
}

/**
 * Terminates lockstep's own sessions on a node except the coordinator lock's
 * (the fault tests' "cut a connection"); never throws.
 */
export async function cutLockstepSessions(url: string): Promise<void> {
  const client = new LibpqClient(clientConfig(url, 'lockstep-fault'));
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name LIKE 'lockstep-%' AND application_name NOT IN ('lockstep-fault', 'lockstep-coordinator', 'lockstep-migrate')
          AND pid <> pg_backend_pid()`,
    );
  } catch {
    // A fault injection that fails changes nothing.
  } finally {
    await client.end().catch(() => undefined);
  }
}
