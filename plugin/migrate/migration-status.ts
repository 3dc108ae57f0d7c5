import { isUnanswered, nodeStepError } from '../attach/node-step.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { AgentStatusReader } from '../ports/agent-status-bus.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import type { MigrationHistoryEntry, MigrationNodeSession } from '../ports/migration-session.js';
import { copiedBefore } from '../protocol/migration-summary.js';
import { type ReportedHistory, readReportedHistories } from './bus-migration-status.js';
import { readMigrationFiles } from './migration-files.js';

/** One node in `migrate status --json` (`name` as in `status --json`). */
export interface NodeMigrations {
  name: string;
  /** Its history, in order (empty when it could not be read). */
  applied: Array<{ name: string; checksum: string; appliedAt: string }>;
  /** Migrations of the folder not in its history. */
  pending: string[];
  /** Its history is not the primary's (a replica only). */
  differs: boolean;
  /** Why its history could not be read (unreachable, not attached), else null. */
  error: string | null;
  reachable: boolean;
  /**
   * With `bus` (a replica): its history as its agent reported it (count,
   * last name, when read), not read from the replica; `applied` is then the
   * primary's less what it lacks, empty when the summary cannot tell.
   */
  reported?: { count: number; last: string | null; readAt: string } | null;
  /**
   * A replica: the primary's migrations it has no history row of that the
   * primary applied before its current copy began (attached before attach
   * copied the history): in its tables by construction, so neither pending
   * nor a difference (`status` does not report them either).
   */
  copiedBefore?: string[];
}

/** `lockstep migrate status`: every node's history against the folder. */
export interface MigrationStatus {
  /** The folder's migrations, in order. */
  files: string[];
  nodes: NodeMigrations[];
  /** Every node's history could be read and is the primary's. */
  consistent: boolean;
}

/** With `bus`: the replicas' histories are read from their agents' reports. */
export interface BusHistories {
  readonly reader: AgentStatusReader;
  readonly configFile?: string;
}

/**
 * Reads every node's migration history and compares it with the folder and
 * with the primary's; with `bus`, the replicas' from their agents' reports.
 */
export async function readMigrationStatus(
  config: LockstepConfig,
  dir: string,
  /** A node's migration session (the composition root's adapter). */
  session: (node: string, url: string) => MigrationNodeSession,
  bus?: BusHistories,
): Promise<MigrationStatus> {
  const files = await readMigrationFiles(dir);
  const readAt = new Date();
  const direct = bus ? [] : config.replicas;
  const read = await Promise.all(
    [session('primary', config.primary), ...direct.map((r) => session(r.name, r.url))].map((s) =>
      readHistory(config, s),
    ),
  );
  const primaryHistory = read[0]?.history ?? [];
  const replicaNames = config.replicas.map((r) => r.name);
  const reported = !bus
    ? []
    : read[0]?.history
      ? await readReportedHistories(
          bus.reader,
          config.slot,
          replicaNames,
          { history: primaryHistory, readAt },
          bus.configFile,
        )
      : replicaNames.map((name) => notCompared(name));
  const key = (h: ReadonlyArray<{ name: string; checksum: string }>) =>
    h.map((x) => `${x.name}:${x.checksum}`).join(',');
  const nodes = [
    ...read.map(({ name, history, copiedAt, error }): NodeMigrations => {
      const applied = history ?? [];
      const has = new Set(applied.map((h) => h.name));
      const copied = new Set(copiedBefore(primaryHistory, copiedAt).filter((n) => !has.has(n)));
      const expected = primaryHistory.filter((h) => !copied.has(h.name));
      return {
        name,
        applied,
        pending: pendingOf(files, [...applied, ...named([...copied])]),
        differs: history !== null && name !== 'primary' && key(applied) !== key(expected),
        error: error === null ? null : ((error as Error).message ?? String(error)),
        reachable: !isConnectionFailure(error),
        ...(name === 'primary' ? {} : { copiedBefore: [...copied] }),
      };
    }),
    ...reported.map(
      (r): NodeMigrations => ({
        name: r.name,
        applied: r.history ?? [],
        pending: r.history ? pendingOf(files, [...r.history, ...named(r.copiedBefore)]) : [],
        differs: r.differs,
        error: r.error,
        reachable: r.reachable,
        reported: r.reported,
        copiedBefore: r.copiedBefore,
      }),
    ),
  ];
  return {
    files: files.map((f) => f.name),
    nodes,
    consistent: nodes.every((n) => n.error === null && !n.differs),
  };
}

/** A replica with `bus` when the primary's history, what its report is compared with, was not read. */
function notCompared(name: string): ReportedHistory {
  return {
    name,
    history: null,
    differs: false,
    reported: null,
    error: `[${name}] not compared: the primary's migration history could not be read`,
    reachable: true,
  };
}

const named = (names: readonly string[] = []) => names.map((name) => ({ name }));

function pendingOf(
  files: ReadonlyArray<{ name: string }>,
  applied: ReadonlyArray<{ name: string }>,
): string[] {
  const names = new Set(applied.map((h) => h.name));
  return files.filter((f) => !names.has(f.name)).map((f) => f.name);
}

/** One node's history, or why it could not be read (named; unanswered: unreachable). */
async function readHistory(
  config: LockstepConfig,
  s: MigrationNodeSession,
): Promise<{
  name: string;
  history: MigrationHistoryEntry[] | null;
  copiedAt: string | null;
  error: unknown;
}> {
  try {
    if (s.node === 'primary')
      return { name: s.node, history: await s.history(), copiedAt: null, error: null };
    return { name: s.node, ...(await s.replicaHistory(config.slot)), error: null };
  } catch (error) {
    // A node that did not answer within its read's deadline counts as unreachable (exit 3), named.
    const named = isUnanswered(error)
      ? nodeStepError(
          s.node,
          'reading the migration history',
          config.applyTimeoutMs,
          error,
          'run lockstep migrate status again',
        )
      : error;
    return { name: s.node, history: null, copiedAt: null, error: named };
  }
}

/** `migrate status` for people: a line per node. */
export function formatMigrationStatus(status: MigrationStatus): string[] {
  return status.nodes.map((n) => {
    if (n.error !== null)
      return `${n.name}: ${n.reachable ? 'history not readable (not attached?)' : 'unreachable'}: ${n.error.split('\n')[0]}`;
    if (n.reported && n.differs && n.applied.length === 0)
      return `${n.name}: its agent reports ${n.reported.count} applied (last ${n.reported.last ?? 'none'})  — DIFFERS from the primary's history`;
    const last = n.applied[n.applied.length - 1];
    const via = n.reported ? ' (as its agent reports)' : '';
    const copied = n.copiedBefore?.length
      ? `, ${n.copiedBefore.length} copied before (no history row: applied before its copy)`
      : '';
    return `${n.name}: ${n.applied.length} applied${last ? ` (last ${last.name})` : ''}${via}${copied}, ${n.pending.length} pending${n.pending.length ? `: ${n.pending.join(', ')}` : ''}${n.differs ? "  — DIFFERS from the primary's history" : ''}`;
  });
}
