import { agentFreshness } from '../agent/agent-status-staleness.js';
import type { AgentStatusReader, StoredAgentStatus } from '../ports/agent-status-bus.js';
import type { LockstepError } from '../ports/lockstep-error.js';
import { lsnDistance } from '../protocol/index.js';
import { shownReplicaState } from '../protocol/shown-replica-state.js';
import { judgeBusMigrations, type PrimaryMigrations } from './bus-migration-gaps.js';
import { withGap } from './migration-gaps.js';
import type { InDoubtTransaction, LockstepStatus, ReplicaStatus } from './read-status.js';

/** How `status` reads the replicas when they are reported over the bus. */
export interface BusStatusSource {
  readonly reader: AgentStatusReader;
  /** For the fix of a replica no agent reported on. */
  readonly configFile?: string;
}

/**
 * With `bus`, the replicas as their agents last reported them to the bus —
 * never from direct connections, which the primary's side may not have. A
 * report older than a few heartbeats is `unknown` (its agent stopped, hung
 * or is cut off); so is a replica without one, and every replica when the
 * bus cannot be read. Lag is against the primary's version read just before,
 * the migration history (the report's summary) against the primary's.
 */
export async function readBusReplicas(
  source: BusStatusSource,
  names: readonly string[],
  status: LockstepStatus,
  primary: PrimaryMigrations,
  now = new Date(),
): Promise<ReplicaStatus[]> {
  const { reader } = source;
  let reports: Map<string, StoredAgentStatus>;
  try {
    reports = await reader.read(names);
    status.bus = { bucket: reader.bucket, reachable: true, error: null };
  } catch (error) {
    const message = (error as LockstepError).message;
    status.bus = { bucket: reader.bucket, reachable: false, error: message };
    return names.map((name) => unknown(name, message));
  }
  const gaps = await judgeBusMigrations(reader, reports, primary, now);
  return names.map((name) => {
    const stored = reports.get(name);
    if (!stored)
      return unknown(
        name,
        `[${name}] no agent reports on this replica (bucket ${reader.bucket})\n  fix: start lockstep agent --config ${source.configFile ?? 'F'} --replica ${name} beside it`,
      );
    status.inDoubt.push(...inDoubtOf(stored, now));
    return withGap(fromReport(stored, status, now), gaps.get(name) ?? null);
  });
}

function unknown(name: string, error: string): ReplicaStatus {
  return {
    name,
    version: null,
    lsn: null,
    lagVersions: null,
    lagBytes: null,
    lagSeconds: null,
    state: 'unknown',
    error,
    errorAt: null,
    reachable: false,
    source: 'bus',
    agent: null,
    migrationsDiffer: false,
    missingMigrations: [],
  };
}

function fromReport(stored: StoredAgentStatus, status: LockstepStatus, now: Date): ReplicaStatus {
  const { record } = stored;
  const head = status.primary.version;
  const lagVersions =
    head === null || record.version === null || status.paused
      ? null
      : Math.max(0, head - record.version);
  const wal = status.primary.walLsn;
  const fresh = agentFreshness(record, stored.storedAt, now);
  const error = fresh.stale
    ? `[${record.replica}] ${fresh.problem}\n  fix: ${fresh.fix}`
    : record.error &&
      `[${record.replica}${record.error.table ? `, table ${record.error.table}` : ''}] ${record.error.problem}\n  fix: ${record.error.fix}`;
  return {
    name: record.replica,
    version: record.version,
    lsn: record.lsn,
    lagVersions,
    lagBytes: record.lsn && wal ? Math.max(0, lsnDistance(record.lsn, wal)) : null,
    lagSeconds: lagSecondsOf(lagVersions, record.pendingSince, now),
    // A report that stopped coming never counts as the replica's state now. Paused, as in
    // process: the pause row on the primary decides (the agent only sees nothing arrive).
    state: fresh.stale ? 'unknown' : shownReplicaState(record.state, status.paused),
    error,
    errorAt: fresh.stale ? now.toISOString() : record.error ? record.updatedAt : null,
    reachable: !fresh.stale,
    source: 'bus',
    agent: {
      ...record.agent,
      heartbeatAt: record.heartbeat.at,
      heartbeats: record.heartbeat.count,
    },
    migrationsDiffer: false,
    missingMigrations: [],
  };
}

/**
 * Age of the oldest packet the replica has not applied, as in process: from
 * the commit time its agent reported (a stopped agent's last report keeps it,
 * so it grows); unknown when the agent held no such packet.
 */
function lagSecondsOf(
  lagVersions: number | null,
  pendingSince: string | null | undefined,
  now: Date,
): number | null {
  if (lagVersions === 0) return 0;
  if (!lagVersions || !pendingSince) return null;
  return Math.max(0, (now.getTime() - Date.parse(pendingSince)) / 1000);
}

function inDoubtOf({ record }: StoredAgentStatus, now: Date): InDoubtTransaction[] {
  return record.inDoubt.map(({ gid, preparedAt }) => ({
    node: record.replica,
    gid,
    preparedAt,
    ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(preparedAt)) / 1000)),
  }));
}
