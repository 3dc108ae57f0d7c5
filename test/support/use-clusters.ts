import { afterAll, beforeAll } from 'vitest';
import type { ClusterSpec, PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { type ClusterSet, startClusters } from '../harness/clusters.js';

/** The clusters of a test file, available once `beforeAll` has run. */
export interface UsedClusters {
  readonly primary: PostgresCluster;
  readonly replicas: readonly PostgresCluster[];
}

/**
 * Starts a primary and `replicas` replica clusters before the file's tests and
 * destroys them after (also when a test fails).
 */
export function useClusters(
  options: {
    replicas?: number;
    primary?: Partial<ClusterSpec>;
    replica?: Partial<ClusterSpec>;
  } = {},
): UsedClusters {
  let set: ClusterSet | null = null;
  beforeAll(async () => {
    set = await startClusters(options);
  });
  afterAll(async () => {
    await set?.destroy();
  });
  const need = (): ClusterSet => {
    if (!set) throw new Error('clusters are used before beforeAll ran');
    return set;
  };
  return {
    get primary() {
      return need().primary;
    },
    get replicas() {
      return need().replicas;
    },
  };
}

/** The first two replicas of a set started with at least two, typed as present. */
export function twoReplicas<T>(replicas: readonly T[]): [T, T] {
  const [first, second] = replicas;
  if (first === undefined || second === undefined) throw new Error('the test needs two replicas');
  return [first, second];
}
