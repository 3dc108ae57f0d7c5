import { agentFreshness } from '../agent/agent-status-staleness.js';
import type { AgentStatusReader, StoredAgentStatus } from '../ports/agent-status-bus.js';
import type { LockstepError } from '../ports/lockstep-error.js';
import type { MigrationHistoryEntry } from '../ports/migration-session.js';
import { copiedBefore, inNameOrder, lackingFromSummary } from '../protocol/migration-summary.js';
import { judgeBusMigrations } from '../status/bus-migration-gaps.js';

/** A replica's history as `migrate status` tells it from its agent's report. */
export interface ReportedHistory {
  readonly name: string;
  /** Its history as far as the summary tells (the primary's, less what it lacks); null: not told. */
  readonly history: MigrationHistoryEntry[] | null;
  readonly differs: boolean;
  /** What the agent reported (count, last name, when it read it); null: no report. */
  readonly reported: { count: number; last: string | null; readAt: string } | null;
  readonly error: string | null;
  /** False when no agent reports (as `status`'s `unknown`: exit 3). */
  readonly reachable: boolean;
  /** The primary's migrations applied before its copy began that it has no row of (oldest first, as far as told). */
  readonly copiedBefore?: string[];
}

/**
 * With `bus`, the replicas' histories from their agents' reports (a count,
 * the last name and a digest: DESIGN.md, the packet bus), never from the
 * replicas, which the primary's side may not reach. A replica no agent
 * reports on, or whose report stopped coming, is unreachable; one whose
 * agent reports no history (an older agent) is an error.
 */
export async function readReportedHistories(
  reader: AgentStatusReader,
  stream: string,
  replicas: readonly string[],
  primary: { history: readonly MigrationHistoryEntry[]; readAt: Date },
  configFile = 'F',
): Promise<ReportedHistory[]> {
  let reports: Map<string, StoredAgentStatus>;
  try {
    reports = await reader.read(replicas);
  } catch (error) {
    const message = (error as LockstepError).message;
    return replicas.map((name) => unreported(name, message));
  }
  const names = inNameOrder(primary.history.map((h) => h.name));
  // Waits (a few heartbeats at most) for reports read after the primary's history.
  await judgeBusMigrations(reader, reports, {
    stream,
    history: primary.history,
    preparedGids: [],
    readAt: primary.readAt,
  });
  const now = new Date();
  return replicas.map((name): ReportedHistory => {
    const stored = reports.get(name);
    if (!stored || agentFreshness(stored.record, stored.storedAt, now).stale)
      return unreported(
        name,
        `[${name}] no agent reports on this replica now (bucket ${reader.bucket})\n  fix: start lockstep agent --config ${configFile} --replica ${name} beside it`,
      );
    const summary = stored.record.migrations;
    if (!summary)
      return {
        ...unreported(
          name,
          `[${name}] its agent reports no migration history\n  fix: run lockstep agent of this version beside it`,
        ),
        reachable: true,
      };
    const exempt = copiedBefore(primary.history, summary.copiedAt);
    const missing = lackingFromSummary(names, summary, exempt);
    // The exempt ones it lacks: the oldest, as many as its count leaves out.
    const copied =
      missing === null
        ? []
        : exempt.slice(0, Math.max(0, names.length - summary.count - missing.length));
    const lacking = new Set([...(missing ?? []), ...copied]);
    return {
      name,
      history: missing === null ? null : primary.history.filter((h) => !lacking.has(h.name)),
      copiedBefore: copied,
      differs: missing === null || missing.length > 0,
      reported: { count: summary.count, last: summary.last, readAt: summary.readAt },
      error: null,
      reachable: true,
    };
  });
}

function unreported(name: string, error: string): ReportedHistory {
  return { name, history: null, differs: false, reported: null, error, reachable: false };
}
