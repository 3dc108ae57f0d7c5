import type pg from 'pg';

/**
 * Server-side bounds for a control session that takes row or advisory locks
 * on the primary, so a lockstep process that is frozen (SIGSTOP, a VM pause)
 * or that gave up on a query cannot keep those locks: a transaction left idle
 * ends after 10 s, a lock wait after 20 s or, if that is shorter, a margin
 * before the client's query deadline (lockWaitUnderMs) (a wait the client abandoned never goes on
 * holding a lock, and a live node that waits on a lock fails with its own
 * error, not as one that does not answer), and from PostgreSQL 14 a backend
 * whose client is gone ends within a second. A shorter lock_timeout the
 * session has (a command's, under its deadline) stays.
 * Lockstep's own transactions on these sessions are a few statements sent
 * back to back: none is idle for longer than a round trip.
 */
const boundsSql = (
  local: boolean,
  lockWaitMs: number,
) => `SELECT set_config('idle_in_transaction_session_timeout', '10s', ${local}),
       set_config('lock_timeout', CASE
         WHEN current_setting('lock_timeout') <> '0'
          AND current_setting('lock_timeout')::interval < interval '${lockWaitMs} ms'
         THEN current_setting('lock_timeout') ELSE '${lockWaitMs}ms' END, ${local}),
       ${endWhenDropped(local)}`;

/** The longest lock wait of a control session. */
const CONTROL_LOCK_WAIT_MS = 20_000;

/**
 * The server-side lock wait under a client's query deadline of `deadlineMs`:
 * it must end first, named, even when the client's statement reached the
 * server late (a busy event loop, a slow round trip), so it leaves a margin
 * of 1 s or 10 % of the deadline, whichever is more (at most half of it).
 */
export const lockWaitUnderMs = (deadlineMs: number) =>
  Math.max(
    1,
    deadlineMs -
      Math.max(Math.floor(deadlineMs * 0.1), Math.min(1_000, Math.floor(deadlineMs / 2))),
  );

/** The lock wait of a control session under a client's query deadline of `deadlineMs` (see boundsSql). */
export const controlLockWaitMs = (deadlineMs: number) =>
  Math.min(CONTROL_LOCK_WAIT_MS, lockWaitUnderMs(deadlineMs));

/**
 * A select-list item: from PostgreSQL 14 (the setting's first version) a
 * backend whose client dropped its session ends within a second, even in a
 * lock wait, instead of going on with its locks; for the transaction only
 * when `local`.
 */
export const endWhenDropped = (local: boolean) =>
  `CASE WHEN current_setting('server_version_num')::int >= 140000
        THEN set_config('client_connection_check_interval', '1s', ${local}) END`;

/** The bounds above for the current transaction only: for a command's session (pause), sent right after BEGIN. */
export const BOUND_TRANSACTION_SQL = boundsSql(true, CONTROL_LOCK_WAIT_MS);

/** Applies the bounds above to the session (for its lifetime), under the client's query deadline. */
export async function boundControlSession(
  client: pg.ClientBase,
  deadlineMs: number,
): Promise<void> {
  await client.query(boundsSql(false, controlLockWaitMs(deadlineMs)));
}

/** SQLSTATE of a session the server ended for sitting idle in a transaction. */
export const IDLE_IN_TRANSACTION_ENDED = '25P03';

/**
 * Bounds for a session whose transactions wait on this process (a replica
 * apply session; a migration's session on any node): a transaction it
 * leaves idle for longer than `idleMs` ends (a frozen applier's position-row
 * and row locks would otherwise fence its successor out, a frozen migration's
 * table locks keep the application out, for as long as it is frozen), and
 * from PostgreSQL 14 a backend whose client dropped it (the deadline passed)
 * ends within a second instead of waiting on. A running process keeps its
 * transaction with SessionKeepalive. Lock waits are not bounded here: the
 * client's deadline or the session's lock_timeout ends them, and a prepared
 * transaction bounds its own.
 */
export async function boundIdleInTransaction(client: pg.ClientBase, idleMs: number): Promise<void> {
  await client.query(
    `SELECT set_config('idle_in_transaction_session_timeout', $1, false), ${endWhenDropped(false)}`,
    [`${Math.max(1, Math.round(idleMs))}ms`],
  );
}

/** How long a lock session may sit idle before the server ends it (PostgreSQL 14+). */
export const LOCK_SESSION_IDLE_MS = 15_000;

/**
 * Ends an advisory-lock session that stays idle for LOCK_SESSION_IDLE_MS
 * (from PostgreSQL 14): its holder touches it more often than that while its
 * process runs, so only a frozen holder (SIGSTOP, a paused VM) loses the lock
 * this way, and a standby takes over instead of waiting for ever.
 */
export async function boundLockSessionIdle(client: pg.ClientBase): Promise<void> {
  await client.query(
    `SELECT CASE WHEN current_setting('server_version_num')::int >= 140000
                 THEN set_config('idle_session_timeout', $1, false) END`,
    [`${LOCK_SESSION_IDLE_MS}ms`],
  );
}
