import type pg from 'pg';

/**
 * Server-side bounds for a control session that takes row or advisory locks
 * on the primary, so a lockstep process that is frozen (SIGSTOP, a VM pause)
 * or that gave up on a query cannot keep those locks: a transaction left idle
 * ends after 10 s, a lock wait after 20 s (before the client's own 30 s query
 * deadline, so a wait the client abandoned never goes on holding a lock),
 * and from PostgreSQL 14 a backend whose client is gone ends within a second.
 * Lockstep's own transactions on these sessions are a few statements sent
 * back to back: none is idle for longer than a round trip.
 */
const boundsSql = (
  local: boolean,
) => `SELECT set_config('idle_in_transaction_session_timeout', '10s', ${local}),
       set_config('lock_timeout', '20s', ${local}),
       CASE WHEN current_setting('server_version_num')::int >= 140000
            THEN set_config('client_connection_check_interval', '1s', ${local}) END`;

/** The bounds above for the current transaction only: for a command's session (pause), sent right after BEGIN. */
export const BOUND_TRANSACTION_SQL = boundsSql(true);

/** Applies the bounds above to the session (for its lifetime). */
export async function boundControlSession(client: pg.ClientBase): Promise<void> {
  await client.query(boundsSql(false));
}
