import pg from 'pg';
import { LockstepError } from '../../plugin/lockstep-error.js';
import { clientConfig, redactUrl, scrubSecrets } from './connection-url.js';

/** Opens a client to a node, turning a failure into an error that names the node and the fix (never the password). */
export async function connectNode(
  node: string,
  url: string,
  applicationName = 'lockstep',
  queryTimeoutMs?: number,
): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(url, applicationName, queryTimeoutMs));
  client.on('error', () => undefined);
  try {
    await client.connect();
    return client;
  } catch (error) {
    await client.end().catch(() => undefined);
    throw unreachable(node, url, error);
  }
}

/** The client's socket (not in @types/pg). */
function socketOf(client: pg.Client): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
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

/** The error for a node that cannot be reached or refuses the login. */
export function unreachable(node: string, url: string, error: unknown): LockstepError {
  const e = error as { code?: string; message?: string };
  const reason = scrubSecrets(e.message || e.code || String(error), url);
  const auth = e.code === '28P01' || e.code === '28000';
  return new LockstepError({
    node,
    setting: 'connection',
    sqlState: e.code,
    problem: `cannot connect to ${redactUrl(url)}: ${reason}`,
    fix: auth
      ? 'check the user and password in the URL, and pg_hba.conf on that server'
      : `check that the server is running and reachable, and the URL for ${node === 'primary' ? 'primary' : `replica "${node}"`} in the configuration`,
  });
}

/**
 * Terminates lockstep's own sessions on a node except the coordinator lock's
 * (the fault tests' "cut a connection"); never throws.
 */
export async function cutLockstepSessions(url: string): Promise<void> {
  const client = new pg.Client(clientConfig(url, 'lockstep-fault'));
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
