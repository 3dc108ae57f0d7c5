import { beforeAll } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { type LockstepProcess, writeConfig } from './lockstep-process.js';
import { type AttachedClusters, useAttached } from './use-attached.js';
import { useNatsCluster } from './use-nats-cluster.js';

/** The stream `lockstep run` publishes to for slot `lockstep`. */
export const STREAM = 'LOCKSTEP_LOCKSTEP';

/** A primary with two attached replicas (table t) publishing to a 3-node NATS cluster. */
export interface PowerLossTarget {
  readonly nats: ReturnType<typeof useNatsCluster>;
  readonly clusters: AttachedClusters;
  /** The configuration file of `lockstep run` and the agents. */
  readonly configFile: string;
  replica(index: number): PostgresCluster;
  /** The head the publisher recorded on the primary. */
  recordedHead(): Promise<{ version: number; lsn: string }>;
}

/**
 * Sets up a {@link PowerLossTarget} for the test file. The slot is confirmed
 * only `serverSyncInterval` after JetStream's ack: 10 minutes, so it stays at
 * attach's point for the whole test, as after a power loss of the NATS nodes
 * inside that interval.
 */
export function usePowerLossTarget(): PowerLossTarget {
  const nats = useNatsCluster();
  const clusters = useAttached({
    replicas: 2,
    schema: 'CREATE TABLE t (id int PRIMARY KEY)',
  });
  let configFile = '';
  beforeAll(() => {
    const bus = { url: nats.cluster.url, replicas: 3, serverSyncInterval: '10m' };
    configFile = writeConfig(clusters.primary, clusters.replicas, { bus }).file;
  });
  return {
    nats,
    clusters,
    get configFile() {
      return configFile;
    },
    replica: (index) => clusters.replicas[index] as PostgresCluster,
    async recordedHead() {
      const [row] = await clusters.primary.query<{ version: string; lsn: string }>(
        "SELECT version::text, lsn::text FROM lockstep.streams WHERE stream = 'lockstep'",
      );
      return { version: Number(row?.version), lsn: row?.lsn ?? '0/0' };
    },
  };
}

/** The replica's position row as text, as the bus messages carry it. */
export async function appliedPosition(
  node: PostgresCluster,
): Promise<{ version: number; lsn: string }> {
  const [row] = await node.query<{ version: string; lsn: string }>(
    'SELECT version::text, lsn::text FROM lockstep.applied',
  );
  return { version: Number(row?.version), lsn: row?.lsn ?? '0/0' };
}

/** Stops a process with SIGTERM and waits for it to exit. */
export async function stopped(process: LockstepProcess): Promise<void> {
  process.kill('SIGTERM');
  await process.exited;
}
