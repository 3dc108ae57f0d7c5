import type pg from 'pg';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually } from './compare-nodes.js';
import { useAppSidecar } from './use-app-sidecar.js';
import { type AttachedClusters, useAttached } from './use-attached.js';

/**
 * A row written now (into `marker`) arrives on every replica, no replica
 * reports an error (halted, stale), and `schemaOf` reads alike on every node.
 */
export async function expectEveryReplicaApplying(
  clusters: AttachedClusters,
  schemaOf: (node: PostgresCluster) => Promise<unknown[]>,
): Promise<void> {
  const [row] = await clusters.primary.query<{ id: string }>(
    'INSERT INTO marker DEFAULT VALUES RETURNING id',
  );
  const errors = async () =>
    (await readStatus(postgresCluster(), loadConfig(clusters.configFile))).replicas
      .filter((r) => r.error !== null || r.state === 'stale')
      .map((r) => `${r.name}: ${r.state} ${r.error}`);
  const arrived = async () => {
    for (const replica of clusters.replicas)
      if ((await replica.query('SELECT 1 FROM marker WHERE id = $1', [row?.id])).length === 0)
        return false;
    return true;
  };
  await eventually(
    async () => (await arrived()) || (await errors()).length > 0,
    'the row on every replica, or a replica error',
  );
  expect(await errors()).toEqual([]);
  expect(await arrived()).toBe(true);
  const expected = await schemaOf(clusters.primary);
  for (const replica of clusters.replicas) expect(await schemaOf(replica)).toEqual(expected);
}

/** A primary capturing DDL with two replicas, `lockstep run` and an `app` connection, for the describe block. */
export function useCapturingReplicas(
  schema: string,
  schemaOf: (node: PostgresCluster) => Promise<unknown[]>,
) {
  const clusters = useAttached({
    replicas: 2,
    schema,
    config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
  });
  const running = useAppSidecar(clusters);
  return {
    clusters,
    running,
    expectEveryReplicaApplying: () => expectEveryReplicaApplying(clusters, schemaOf),
  };
}

/**
 * Runs `sql` on a superuser session out of the capture's sight, as lockstep
 * migrate's own DDL runs (`lockstep.migrating`, in its own transaction).
 */
export async function outOfCapture(client: pg.Client, sql: string): Promise<void> {
  await client.query('BEGIN; SET LOCAL lockstep.migrating = on');
  await client.query(sql);
  await client.query('COMMIT');
}
