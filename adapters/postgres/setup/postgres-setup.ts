import type pg from 'pg';
import type { LockstepCluster, SessionOptions } from '../../../plugin/ports/lockstep-cluster.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../connection/connection-url.js';
import { connectBounded, connectNode, lockWaitWithin } from '../connection/node-connection.js';
import { connectWatched } from '../connection/watched-session.js';
import { migrateControlSchemas } from '../control/control-schema.js';
import { DecisionLog } from '../control/decision-log.js';
import { JoinHolds } from '../control/join-holds.js';
import {
  type PreparedTransactions,
  preparedTransactionNodes,
} from '../control/prepared-transactions.js';
import { ReplicaAgentLock } from '../control/replica-agent-lock.js';
import { ResyncGuard } from '../control/resync-guard.js';
import { StreamLock, type StreamLockPurpose } from '../control/stream-lock.js';
import { createReplicationSlot } from '../source/replication-slot.js';
import { PgPrimarySession } from './primary-session.js';
import { PgReplicaSession } from './replica-session.js';
import { syncSequences } from './sequence-sync.js';
import { copyTable } from './table-copy.js';

/**
 * A node's session. Bounded: every query has a deadline, the backend ends
 * once its client dropped it, and a lock wait ends on the server just before
 * the deadline with its own error: a live replica that waits on a lock is not
 * taken for one that does not answer. Watched: no deadline, but a server
 * that stops answering fails the session (see connectWatched).
 */
async function open(
  node: string,
  url: string,
  options: SessionOptions,
  controlTimeoutMs: number,
): Promise<pg.Client> {
  const applicationName = options.applicationName ?? 'lockstep';
  if (options.answerWatchMs)
    return connectWatched(node, url, applicationName, options.answerWatchMs);
  if (!options.bounded) return connectNode(node, url, applicationName);
  const deadlineMs = options.queryTimeoutMs ?? controlTimeoutMs;
  return connectBounded(node, url, applicationName, deadlineMs, lockWaitWithin(deadlineMs));
}

/** The cluster on Postgres, with the decision log a start-over finishes rounds by. */
export interface PostgresCluster extends LockstepCluster {
  /** The stream's decision log, unfenced (for a holder of the coordinator lock). */
  decisionLog(url: string, stream: string): DecisionLog;
  phaseTwoNodes(config: {
    readonly primary: string;
    readonly replicas: ReadonlyArray<{ readonly name: string; readonly url: string }>;
  }): Map<string, PreparedTransactions>;
}

/**
 * Every Postgres implementation attach, detach, doctor, resync, pause and
 * status need, for the composition roots to hand to them. `controlTimeoutMs`
 * (the configuration's) is the query deadline of every control connection
 * and of bounded sessions that name none.
 */
export function postgresCluster(
  settings: { readonly controlTimeoutMs?: number } = {},
): PostgresCluster {
  const deadline = settings.controlTimeoutMs ?? CONTROL_QUERY_TIMEOUT_MS;
  return {
    primary: async (url: string, options: SessionOptions = {}) =>
      new PgPrimarySession(await open('primary', url, options, deadline), options.bounded),
    replica: async (name: string, url: string, options: SessionOptions = {}) =>
      new PgReplicaSession(await open(name, url, options, deadline), options.bounded, name, url),
    streamLock: (url: string, stream: string, purpose?: StreamLockPurpose) =>
      new StreamLock(url, stream, purpose, deadline),
    takeResyncGuard: (replica: string, url: string, stream: string) =>
      ResyncGuard.take(replica, url, stream, deadline),
    replicaAgentLock: (replica: string, url: string, stream: string) =>
      new ReplicaAgentLock(replica, url, stream, deadline),
    openJoinHolds: (url: string, stream: string) => JoinHolds.open(url, stream, deadline),
    createSlot: (url, slot, options) =>
      createReplicationSlot(url, slot, { queryTimeoutMs: deadline, ...options }),
    copyTable,
    syncSequences: (primaryUrl, publication, replicas) =>
      syncSequences(primaryUrl, publication, replicas, deadline),
    migrateControlSchemas: (nodes) => migrateControlSchemas(nodes, deadline),
    decisionLog: (url: string, stream: string) => new DecisionLog(url, stream, undefined, deadline),
    phaseTwoNodes: (config) => preparedTransactionNodes({ ...config, controlTimeoutMs: deadline }),
  };
}
