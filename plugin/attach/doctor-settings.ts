import type { NodeSession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { sqlName } from '../protocol/sql-name.js';

/** What the server settings of one node mean for lockstep: problems fail doctor, warnings do not. */
export interface SettingsFindings {
  readonly problems: LockstepError[];
  readonly warnings: LockstepError[];
}

/** Below this, `wal_sender_timeout` cuts the stream whenever the sidecar is briefly busy. */
const SMALL_WAL_SENDER_TIMEOUT_MS = 10_000;
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

const PREPARED_FIX =
  'set max_prepared_transactions = 64 in postgresql.conf (ALTER SYSTEM SET max_prepared_transactions = 64) and restart';

/** `idle_session_timeout` (ms) ends lockstep's idle sessions: the coordinator lock, the apply connections. */
function idleSessionWarning(node: string, role: string, ms: number): LockstepError | null {
  if (!(ms > 0)) return null;
  return new LockstepError({
    node,
    setting: 'idle_session_timeout',
    problem: `idle_session_timeout is ${ms} ms: the server ends lockstep's sessions that wait idle (the sidecar's coordinator lock, quiet apply connections), which makes the sidecar reconnect or hand over to its standby`,
    fix: `exempt lockstep's role only: ALTER ROLE ${sqlName(role)} SET idle_session_timeout = 0`,
  });
}

/** `wal_sender_timeout` (ms) of the primary: 0 never notices a dead sidecar, a small one cuts a busy one. */
function walSenderWarning(ms: number): LockstepError | null {
  const fix =
    "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf() (the default is 60s)";
  if (ms === 0) {
    return new LockstepError({
      node: 'primary',
      setting: 'wal_sender_timeout',
      problem:
        'wal_sender_timeout is 0: a sidecar that died without closing its connection keeps the slot active until TCP gives up, and no other sidecar can take the stream over meanwhile',
      fix,
    });
  }
  if (ms < SMALL_WAL_SENDER_TIMEOUT_MS) {
    return new LockstepError({
      node: 'primary',
      setting: 'wal_sender_timeout',
      problem: `wal_sender_timeout is ${ms} ms: the primary ends lockstep's stream whenever the sidecar answers later than that (a long batch, a pause in the network), and it reconnects and re-reads`,
      fix,
    });
  }
  return null;
}

/** `max_slot_wal_keep_size` (MB, -1 unlimited) against how far behind lockstep lets a replica fall. */
function slotKeepWarning(megabytes: number, maxLagBytes: number): LockstepError | null {
  // Above maxLagBytes: a slow replica is marked stale (and stops holding WAL) before the slot is lost.
  const recommendGb = Math.max(1, Math.ceil((4 * maxLagBytes) / GIB));
  const fix = `ALTER SYSTEM SET max_slot_wal_keep_size = '${recommendGb}GB'; SELECT pg_reload_conf() (a bound the primary's disk can spare, above maxLagBytes = ${maxLagBytes} bytes)`;
  if (megabytes === -1) {
    return new LockstepError({
      node: 'primary',
      setting: 'max_slot_wal_keep_size',
      problem:
        "max_slot_wal_keep_size is -1 (unlimited): while lockstep is paused, stopped or slow, its slot keeps WAL until the primary's disk is full",
      fix,
    });
  }
  if (megabytes * MIB < maxLagBytes) {
    return new LockstepError({
      node: 'primary',
      setting: 'max_slot_wal_keep_size',
      problem: `max_slot_wal_keep_size (${megabytes} MB) is below maxLagBytes (${maxLagBytes} bytes): a replica falling behind gets the slot invalidated for every replica before lockstep marks it stale`,
      fix,
    });
  }
  return null;
}

/**
 * Checks a node's server settings. Both roles: `idle_session_timeout`
 * (warning). Replicas need `max_prepared_transactions` for every two-phase
 * round, the primary for migrations and `exec` (it prepares too); the primary
 * also gets warnings on `wal_sender_timeout` and `max_slot_wal_keep_size`.
 */
export async function checkNodeSettings(
  session: NodeSession,
  node: string,
  options: { primary: boolean; maxLagBytes: number },
): Promise<SettingsFindings> {
  const settings = await session.serverSettings();
  const role = await session.currentRole();
  const number = (name: string) => Number(settings.get(name) ?? Number.NaN);
  const problems: LockstepError[] = [];
  const preparedWarnings: LockstepError[] = [];
  if (!(number('max_prepared_transactions') > 0)) {
    // A replica is in every two-phase round; the primary only in migrate's and exec's: replication
    // works without it there, so it is a warning for the primary.
    (options.primary ? preparedWarnings : problems).push(
      new LockstepError({
        node,
        setting: 'max_prepared_transactions',
        problem: options.primary
          ? 'max_prepared_transactions is 0: the primary cannot prepare, so lockstep migrate and exec will refuse (the primary takes part in their two-phase round); replication itself does not need it'
          : 'max_prepared_transactions is 0: the replica cannot take part in two-phase commits',
        fix: `${PREPARED_FIX} the ${options.primary ? 'primary' : 'replica'}`,
      }),
    );
  }
  const warnings = [
    ...preparedWarnings,
    idleSessionWarning(node, role ?? 'lockstep', number('idle_session_timeout')),
  ];
  if (options.primary) {
    warnings.push(walSenderWarning(number('wal_sender_timeout')));
    // Absent before PostgreSQL 13: nothing to bound the slot with there.
    if (settings.has('max_slot_wal_keep_size'))
      warnings.push(slotKeepWarning(number('max_slot_wal_keep_size'), options.maxLagBytes));
  }
  return { problems, warnings: warnings.filter((w): w is LockstepError => w !== null) };
}
