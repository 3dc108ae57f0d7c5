import type { TableCopyJob } from '../../../plugin/ports/cluster-setup.js';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { probeBackend } from '../connection/backend-probe.js';
import type { CopyOutRelay } from './copy-out-relay.js';
import type { LoadWatch } from './load-watchdog.js';
import { label } from './replica-load.js';

/**
 * Watches the primary's side of a table copy, as load-watchdog watches a
 * replica's: once the read has delivered nothing for `boundMs`, a fresh
 * session asks the primary what the read's backend does. Busy (reading a
 * slow disk, or waiting to write while the replicas take rows slowly): the
 * copy goes on. The primary not answering (a frozen host) or the read
 * waiting on a lock (a long ALTER TABLE there): the read's session is
 * dropped and the relay fails naming the primary, the table and why, so
 * every replica's load ends instead of waiting for ever. Returns `stop`.
 */
export function watchSource(job: TableCopyJob, relay: CopyOutRelay, watch: LoadWatch): () => void {
  let seen = relay.bytes;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const look = async () => {
    if (stopped) return;
    if (relay.bytes === seen) {
      // Waiting to write (ClientWrite) is working: the replicas take the rows slowly.
      const reason = await probeBackend({
        url: watch.url,
        pid: watch.pid(),
        boundMs: watch.boundMs,
      });
      if (stopped) return;
      if (reason !== null && relay.bytes === seen) {
        watch.drop();
        relay.destroy(readFrozen(job, reason, watch.boundMs));
        return;
      }
    }
    seen = relay.bytes;
    timer = setTimeout(look, watch.boundMs);
  };
  timer = setTimeout(look, watch.boundMs);
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
  };
  relay.once('close', stop);
  return stop;
}

/** The read of the table on the primary gave up on: it `reason` for `boundMs`. */
export function readFrozen(job: TableCopyJob, reason: string, boundMs: number): LockstepError {
  return new LockstepError({
    node: 'primary',
    table: label(job),
    problem: `the primary's read of the table ${reason} for ${boundMs} ms (a stopped or frozen server, or a lock held on the table there); no replica kept any of it`,
    fix: "check the primary (pg_stat_activity and pg_locks there, the server's state), then run lockstep attach again; applyTimeoutMs sets how long a read may take nothing",
  });
}

/** A failure of the primary's session or read (not a replica's): it fails every replica's copy. */
export function readFailed(job: TableCopyJob, error: unknown): LockstepError {
  if (error instanceof LockstepError) return error;
  const e = error as { message?: string; code?: string };
  return new LockstepError({
    node: 'primary',
    table: label(job),
    sqlState: e.code,
    problem: `the primary's read of the table failed: ${e.message ?? String(error)}; no replica kept any of it`,
    fix: 'fix the cause on the primary and run lockstep attach again; tables already copied are not copied again',
    cause: error,
  });
}
