import { agentFreshness } from '../agent/agent-status-staleness.js';
import type { AgentStatusReader, StoredAgentStatus } from '../ports/agent-status-bus.js';
import type { AppliedMigration } from '../protocol/migration-summary.js';
import { sleep } from '../support/sleep.js';
import { judgeMigrations, type MigrationGap } from './migration-gaps.js';

/** The primary's side of the comparison. */
export interface PrimaryMigrations {
  /** The stream (slot) the gids belong to. */
  readonly stream: string;
  /** The primary's history, with when it applied each (null: not read; nothing is judged). */
  readonly history: readonly AppliedMigration[] | null;
  /** The gids prepared on the primary when status read it. */
  readonly preparedGids: readonly string[];
  /** When status read the primary's history (its clock). */
  readonly readAt: Date;
}

/** Newer reports are waited for at most this many heartbeats. */
const NEWER_REPORT_BEATS = 3;

/**
 * Each fresh report's migration history against the primary's. A history
 * the agent read before status read the primary's may predate a migration
 * that committed in between (its replica's part not prepared yet when read):
 * where such a report differs, status reads the bucket again each heartbeat,
 * up to 3, for a newer one, and judges the newest it got. `reports` is
 * updated with what it read again. A report without a summary (an older
 * agent, or one that could not read the history) is not judged.
 */
export async function judgeBusMigrations(
  reader: AgentStatusReader,
  reports: Map<string, StoredAgentStatus>,
  primary: PrimaryMigrations,
  now = new Date(),
): Promise<Map<string, MigrationGap | null>> {
  let gaps = judgeAll(reports, primary, now);
  for (let tries = 0; tries < NEWER_REPORT_BEATS; tries++) {
    const early = [...gaps.entries()]
      .filter(([name, gap]) => gap?.differs && readBefore(reports.get(name), primary.readAt))
      .map(([name]) => name);
    if (early.length === 0) break;
    const beat = Math.max(...early.map((n) => reports.get(n)?.record.heartbeat.everyMs ?? 0));
    await sleep(beat);
    const newer = await reader.read(early).catch(() => null);
    if (!newer) break;
    for (const [name, stored] of newer) reports.set(name, stored);
    gaps = judgeAll(reports, primary, now);
  }
  return gaps;
}

function readBefore(stored: StoredAgentStatus | undefined, at: Date): boolean {
  const readAt = stored?.record.migrations?.readAt;
  return readAt !== undefined && Date.parse(readAt) < at.getTime();
}

function judgeAll(
  reports: ReadonlyMap<string, StoredAgentStatus>,
  primary: PrimaryMigrations,
  now: Date,
): Map<string, MigrationGap | null> {
  const gaps = new Map<string, MigrationGap | null>();
  for (const [name, { record, storedAt }] of reports) {
    const summary = record.migrations;
    // A report that stopped coming says nothing about the replica now.
    if (!summary || agentFreshness(record, storedAt, now).stale) continue;
    const gids = [...primary.preparedGids, ...record.inDoubt.map((t) => t.gid)];
    gaps.set(name, judgeMigrations(name, primary.stream, primary.history, { summary }, gids));
  }
  return gaps;
}
