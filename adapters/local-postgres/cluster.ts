import type { QueryResultRow } from 'pg';

/** What a cluster is for: role-specific settings follow from it. */
export type ClusterRole = 'primary' | 'replica';

/** What a caller asks for. */
export interface ClusterSpec {
  readonly role: ClusterRole;
  /** Name used in logs and directory names. */
  readonly name?: string;
  /** Extra `postgresql.conf` settings, overriding the role's defaults. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /**
   * TLS only: a CA and a server certificate made for the cluster, TCP
   * connections without TLS rejected. `hba` lines go first in pg_hba.conf
   * (e.g. `hostssl all app 127.0.0.1/32 scram-sha-256`).
   */
  readonly tls?: { readonly hba?: readonly string[] };
}

/** A running PostgreSQL cluster started by lockstep (tests, benchmarks, the demo). */
export interface PostgresCluster {
  readonly name: string;
  readonly role: ClusterRole;
  /** Superuser URL of the `postgres` database (on a TLS cluster: verify-full against its CA). */
  readonly url: string;
  /** On a TLS-only cluster: the CA certificate that signed the server's (for `sslrootcert`). */
  readonly tls?: { readonly caFile: string };
  readonly host: string;
  readonly port: number;
  /** Server major version. */
  readonly major: number;
  /** Runs one statement as superuser. */
  query<R extends QueryResultRow = QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  /** URL of another database or role on this cluster. */
  urlFor(options: { database?: string; user?: string; password?: string }): string;
  /** Stops the server, keeping its data (simulates a node going down). */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts a server stopped with {@link stopServer}. */
  startServer(): Promise<void>;
  /** Freezes every process of the server (SIGSTOP): connections stay open, nothing answers. */
  freezeServer(): Promise<void>;
  /** Thaws a server frozen with {@link freezeServer}. */
  thawServer(): Promise<void>;
  /** Stops the server and removes everything it had on disk. */
  destroy(): Promise<void>;
}

/** Starts clusters; one implementation per way of running Postgres. */
export interface ClusterProvider {
  readonly name: string;
  start(spec: ClusterSpec): Promise<PostgresCluster>;
}

/** Settings each role needs (DESIGN.md: primary streams logically; replicas take part in 2PC). */
export function roleSettings(role: ClusterRole): Record<string, string | number> {
  const common = { max_prepared_transactions: 64, max_connections: 100 };
  return role === 'primary'
    ? { ...common, wal_level: 'logical', max_replication_slots: 20, max_wal_senders: 20 }
    : { ...common, wal_level: 'replica' };
}
