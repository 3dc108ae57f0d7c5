import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { advisoryLockHeld } from './advisory-lock-held.js';

/**
 * The first advisory key of a migration's primary transaction: taken shared
 * (transaction-level) before PREPARE, it is kept by the prepared transaction
 * until COMMIT or ROLLBACK PREPARED, where the session's migrate lock is not.
 */
const ROUND_KIND = 'lockstep.migrate-round';

/**
 * Inside a migration's primary transaction, just before PREPARE: marks the
 * round in flight, then proves the migrate lock is still held by `holderPid`
 * (the lock's own session). In that order, a join's gate that took the lock
 * after it was lost either sees the mark (and waits for the round to end) or
 * made this check fail: the round is aborted with nothing committed anywhere.
 */
export async function fenceMigrationRound(
  client: pg.ClientBase,
  stream: string,
  holderPid: number | null,
): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock_shared(hashtext($1), hashtext($2))', [
    ROUND_KIND,
    stream,
  ]);
  if (
    holderPid !== null &&
    (await advisoryLockHeld(client, 'lockstep.migrate', stream, { pid: holderPid }))
  )
    return;
  throw new LockstepError({
    node: 'primary',
    problem: `this migration lost the migrate lock of stream "${stream}" before its primary transaction prepared (the lock's session ended: terminated, or the primary or this process paused past its bound): a join's copy may have been taken meanwhile without it`,
    fix: 'run it again: nothing was committed anywhere (a join since then is in the new round)',
  });
}

/** Whether a migration's primary transaction is in flight (running its last steps, or prepared). */
export async function migrationRoundInFlight(
  client: pg.ClientBase,
  stream: string,
): Promise<boolean> {
  return advisoryLockHeld(client, ROUND_KIND, stream, 'any-session');
}
