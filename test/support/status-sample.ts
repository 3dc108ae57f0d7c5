import type { StoredAgentStatus } from '../../plugin/ports/agent-status-bus.js';
import type { AgentStatusRecord } from '../../plugin/protocol/agent-status-record.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { summarizeMigrations } from '../../plugin/protocol/migration-summary.js';
import type { LockstepStatus, ReplicaStatus } from '../../plugin/status/read-status.js';

/** A replica in a status, streaming and caught up unless `fields` say otherwise. */
export function replicaStatus(name: string, fields: Partial<ReplicaStatus> = {}): ReplicaStatus {
  return {
    name,
    version: 10,
    lsn: '0/100' as ReplicaStatus['lsn'],
    lagVersions: 0,
    lagBytes: 0,
    lagSeconds: 0,
    state: 'streaming',
    error: null,
    errorAt: null,
    reachable: true,
    migrationsDiffer: false,
    missingMigrations: [],
    ...fields,
  };
}

/** A status of a primary at version 10 with these replicas. */
export function lockstepStatus(
  replicas: ReplicaStatus[],
  fields: Partial<LockstepStatus> = {},
): LockstepStatus {
  return {
    primary: {
      version: 10,
      lsn: '0/100' as ReplicaStatus['lsn'],
      walLsn: '0/200' as ReplicaStatus['lsn'],
      slotRetainedBytes: 256,
      error: null,
      reachable: true,
    },
    replicas,
    inDoubt: [],
    twoPhase: { roundsCommitted: 3, roundsAborted: 1, held: null },
    paused: false,
    pausedSince: null,
    sidecar: { active: 'host:1', since: null, running: true },
    slot: slotStatus(false),
    joinHolds: [],
    ...fields,
  };
}

/** The slot in a status: healthy, or lost (invalidated) with its reason and fix. */
export function slotStatus(lost: boolean): NonNullable<LockstepStatus['slot']> {
  return {
    name: 'lockstep',
    exists: true,
    walStatus: lost ? 'lost' : 'reserved',
    safeWalBytes: null,
    retainedBytes: 256,
    confirmedLsn: '0/100' as ReplicaStatus['lsn'],
    lost,
    reason: lost ? 'the replication slot "lockstep" was invalidated' : null,
    fix: lost ? 'lockstep attach --resync all' : null,
  };
}

/** An agent's report on replica1, streaming at version 7, its heartbeat at `beatAt`. */
export function agentReport(
  over: Partial<AgentStatusRecord> = {},
  beatAt = new Date(),
): AgentStatusRecord {
  return {
    replica: 'replica1',
    version: 7,
    lsn: toLsn('0/80'),
    state: 'streaming',
    error: null,
    agent: { host: 'db1', pid: 42 },
    inDoubt: [],
    packetsApplied: 3,
    rowsApplied: 9,
    applyErrors: 0,
    heartbeat: { at: beatAt.toISOString(), count: 5, everyMs: 1_000 },
    updatedAt: beatAt.toISOString(),
    ...over,
  };
}

/** A fresh stored report of `replica` whose migration history (read at `readAt`) is `names`. */
export function storedReport(replica: string, names: string[], readAt: Date): StoredAgentStatus {
  const now = new Date();
  const record = agentReport(
    {
      replica,
      migrations: summarizeMigrations(names, readAt),
      heartbeat: { at: now.toISOString(), count: 1, everyMs: 10 },
    },
    now,
  );
  return { record, storedAt: now };
}
