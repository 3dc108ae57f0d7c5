import type { ClientBase } from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { sqlName } from '../../../plugin/protocol/sql-name.js';

/** The fixes for the primary's prerequisites; also used when the server itself refuses (replication-errors.ts). */
export const PRIMARY_FIXES = {
  walLevel:
    "run ALTER SYSTEM SET wal_level = 'logical' on the primary (or set it in postgresql.conf) and restart the primary",
  slots:
    "raise max_replication_slots in postgresql.conf and restart the primary, or drop an unused slot with SELECT pg_drop_replication_slot('<name>')",
  senders: 'raise max_wal_senders in postgresql.conf and restart the primary',
  /** For the role, when known. */
  replication: (role?: string) =>
    `as a superuser run: ALTER ROLE ${role ? sqlName(role) : '<lockstep role>'} REPLICATION`,
} as const;

/** What streaming from the primary needs, checked before it is attempted. */
export interface PrimaryCheckOptions {
  /** Node name used in messages. Default `primary`. */
  readonly node?: string;
  /** Also require a free replication slot (when one is about to be created). */
  readonly needFreeSlot?: boolean;
}

/**
 * Checks the primary's settings and the connecting role for logical
 * replication. Returns every problem found (empty when all is well), each with
 * the setting and the fix, so `doctor` can list them all at once.
 */
export async function checkPrimaryPrerequisites(
  client: ClientBase,
  options: PrimaryCheckOptions = {},
): Promise<LockstepError[]> {
  const node = options.node ?? 'primary';
  const { rows } = await client.query<{
    wal_level: string;
    max_replication_slots: number;
    used_slots: number;
    max_wal_senders: number;
    used_senders: number;
    role: string;
    can_replicate: boolean;
  }>(`
    SELECT current_setting('wal_level') AS wal_level,
           current_setting('max_replication_slots')::int AS max_replication_slots,
           (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
           current_setting('max_wal_senders')::int AS max_wal_senders,
           (SELECT count(*)::int FROM pg_stat_replication) AS used_senders,
           current_user AS role,
           (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`);
  const s = rows[0];
  if (!s) throw new Error('prerequisite query returned no row');
  const problems: LockstepError[] = [];
  if (s.wal_level !== 'logical') {
    problems.push(
      new LockstepError({
        node,
        setting: 'wal_level',
        problem: `wal_level is '${s.wal_level}'; logical replication needs 'logical'`,
        fix: PRIMARY_FIXES.walLevel,
      }),
    );
  }
  if (!s.can_replicate) {
    problems.push(
      new LockstepError({
        node,
        setting: 'REPLICATION privilege',
        problem: `role "${s.role}" may not use replication slots (it has neither REPLICATION nor SUPERUSER)`,
        fix: PRIMARY_FIXES.replication(s.role),
      }),
    );
  }
  if (options.needFreeSlot && s.used_slots >= s.max_replication_slots) {
    problems.push(
      new LockstepError({
        node,
        setting: 'max_replication_slots',
        problem: `all ${s.max_replication_slots} replication slots are in use (max_replication_slots = ${s.max_replication_slots})`,
        fix: PRIMARY_FIXES.slots,
      }),
    );
  }
  if (s.used_senders >= s.max_wal_senders) {
    problems.push(
      new LockstepError({
        node,
        setting: 'max_wal_senders',
        problem: `all ${s.max_wal_senders} WAL senders are busy (max_wal_senders = ${s.max_wal_senders})`,
        fix: PRIMARY_FIXES.senders,
      }),
    );
  }
  return problems;
}

/** Throws the first problem found by {@link checkPrimaryPrerequisites}, if any. */
export async function assertPrimaryPrerequisites(
  client: ClientBase,
  options: PrimaryCheckOptions = {},
): Promise<void> {
  const [first] = await checkPrimaryPrerequisites(client, options);
  if (first) throw first;
}
