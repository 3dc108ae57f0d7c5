import type { Lsn } from './lsn.js';
import type { MigrationSummary } from './migration-summary.js';

/**
 * What `lockstep agent` publishes about its replica for `status` and
 * monitoring (DESIGN.md, "Scale-out: the packet bus"): one key per replica
 * in a key-value bucket beside the packet stream.
 */

/** The KV bucket of a packet stream's agents: `<stream>_AGENTS` (bucket names are `[A-Za-z0-9_-]`). */
export function agentStatusBucket(stream: string): string {
  return `${stream}_AGENTS`;
}

/** A replica's last failure as its agent reports it: what is wrong and the fix, never credentials. */
export interface AgentStatusError {
  readonly problem: string;
  readonly fix: string;
  readonly table: string | null;
}

/** One agent's report on its replica. */
export interface AgentStatusRecord {
  readonly replica: string;
  /** The replica's durable position as the agent last read it (null before it did). */
  readonly version: number | null;
  readonly lsn: Lsn | null;
  /** The replica machine's state (`streaming`, `catching-up`, `halted`, …). */
  readonly state: string;
  readonly error: AgentStatusError | null;
  /** Which process reports. */
  readonly agent: { readonly host: string; readonly pid: number };
  /** lockstep gids prepared on the replica, as the agent last listed them. */
  readonly inDoubt: ReadonlyArray<{ readonly gid: string; readonly preparedAt: string }>;
  /** Running totals since the agent started. */
  readonly packetsApplied: number;
  readonly rowsApplied: number;
  readonly applyErrors: number;
  /** Round gids COMMIT PREPARED found rolled back outside lockstep (absent from older agents). */
  readonly commitsNotLanded?: number;
  /**
   * Primary commit time of the oldest packet the agent holds but its replica
   * has not applied (null: none held; absent from older agents): what lag in
   * seconds is timed from, as in process.
   */
  readonly pendingSince?: string | null;
  /**
   * The replica's migration history, summed up (absent from older agents and
   * before the agent first read it), read in the same listing as `inDoubt`.
   */
  readonly migrations?: MigrationSummary;
  /**
   * Written at least every `everyMs`: the agent's clock (`at`) and a counter
   * that only grows while the same process reports.
   */
  readonly heartbeat: { readonly at: string; readonly count: number; readonly everyMs: number };
  /** When the state, position or error last changed (the agent's clock). */
  readonly updatedAt: string;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isText = (v: unknown): v is string => typeof v === 'string';

/** Decodes a stored report; null when it is not one (another writer, an older format). */
export function decodeAgentStatus(bytes: Uint8Array): AgentStatusRecord | null {
  let value: Partial<AgentStatusRecord>;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes)) as Partial<AgentStatusRecord>;
  } catch {
    return null;
  }
  const beat = value.heartbeat;
  const ok =
    isText(value.replica) &&
    isText(value.state) &&
    (value.version === null || isCount(value.version)) &&
    !!beat &&
    isText(beat.at) &&
    !Number.isNaN(Date.parse(beat.at)) &&
    isCount(beat.count) &&
    isCount(beat.everyMs) &&
    beat.everyMs > 0 &&
    Array.isArray(value.inDoubt);
  if (!ok) return null;
  // A summary that is not one is dropped, not the report: status then does not judge the history.
  const m = value.migrations;
  const summary =
    m &&
    isCount(m.count) &&
    isText(m.digest) &&
    isText(m.readAt) &&
    (m.last === null || isText(m.last)) &&
    (m.copiedAt === undefined || m.copiedAt === null || isText(m.copiedAt))
      ? m
      : undefined;
  return { ...(value as AgentStatusRecord), migrations: summary };
}

export function encodeAgentStatus(record: AgentStatusRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}
