import type pg from 'pg';
import type { SlotBlocker } from '../../../plugin/ports/replication-slots.js';
import { CONTROL_QUERY_TIMEOUT_MS, clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { endClient } from '../connection/node-connection.js';

/** Sessions whose transaction, begun before `since` with an xid, a new logical slot must wait out. */
async function blockers(client: pg.Client, since: Date): Promise<SlotBlocker[]> {
  const { rows } = await client.query<{
    pid: number;
    state: string | null;
    app: string | null;
    usename: string | null;
    age: number;
  }>(
    `SELECT pid, state, application_name AS app, usename,
            extract(epoch FROM now() - xact_start)::int AS age
       FROM pg_stat_activity
      WHERE backend_xid IS NOT NULL AND xact_start < $1 AND pid <> pg_backend_pid()
      ORDER BY xact_start`,
    [since],
  );
  return rows.map((r) => ({
    pid: r.pid,
    state: r.state ?? 'unknown',
    application: r.app ?? '',
    user: r.usename ?? '',
    ageSeconds: r.age,
  }));
}

/**
 * Watches what a slot's creation waits for: every transaction that was
 * running (with an xid) when it began must end first — an idle transaction
 * left open holds it for ever. After `afterMs`, and whenever the set changes,
 * `report` is told who they are. Returns a stop function; never throws.
 */
export function watchSlotBlockers(
  url: string,
  report: (blockers: readonly SlotBlocker[]) => void,
  afterMs = 2_000,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): () => Promise<void> {
  const since = new Date();
  let stopped = false;
  let client: pg.Client | null = null;
  let last = '';
  const connection = async (): Promise<pg.Client> => {
    if (client) return client;
    const fresh = new LibpqClient(clientConfig(url, 'lockstep-attach', queryTimeoutMs));
    fresh.on('error', () => undefined);
    await fresh.connect();
    // Stopped while it connected: nothing else would end it.
    if (stopped) {
      void endClient(fresh);
      throw new Error('stopped');
    }
    client = fresh;
    return fresh;
  };
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      const found = await blockers(await connection(), since);
      const key = found.map((b) => b.pid).join(',');
      if (!stopped && key !== last && found.length > 0) report(found);
      last = key;
    } catch {
      // Only a hint: the creation itself reports real failures.
    }
    if (!stopped) timer = setTimeout(poll, 2_000);
  };
  timer = setTimeout(poll, afterMs);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    // Bounded: the primary may have frozen while the slot was made.
    if (client) await endClient(client);
  };
}
