import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/** One replication system as bench:replicate drives it: 1 primary → its replicas. */
export interface System {
  readonly name: string;
  /** `postgresql.conf` settings its clusters need on top of the baseline (e.g. a preloaded library). */
  readonly settings?: Readonly<Record<string, string>>;
  /** False when (a) creates the replicas' tables itself (pgcopydb): they start empty. */
  readonly needsSchema: boolean;
  /** Before (a), not timed: what makes the bench's clusters look like a user's. */
  prepare?(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /**
   * (a), timed from here: the commands a user runs to start replicating with
   * an initial copy; resolves when the system reports the copy done. Then the
   * stage waits for a marker row written on the primary to be on both
   * replicas (when `replicating`), so a streaming system's start-up and
   * catch-up count.
   */
  sync(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** Whether it keeps replicating after (a); false: it takes part in (a) only. */
  readonly replicating: boolean;
  /** Stops applying (the primary keeps WAL). */
  pause(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** Starts applying again. */
  resume(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** lockstep only: stops by ending the replication process, and starts it anew. */
  readonly restart?: { stop(): Promise<void>; start(): Promise<void> };
  /** Peak RSS of the replication process, MB (lockstep only). */
  peakRssMB(): number | null;
  stop(): Promise<void>;
}

/** libpq connection string of a bench cluster's `postgres` database (trust on 127.0.0.1). */
export const dsn = (c: PostgresCluster): string =>
  `host=${c.host} port=${c.port} dbname=postgres user=postgres`;
