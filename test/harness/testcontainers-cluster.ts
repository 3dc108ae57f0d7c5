import { PostgreSqlContainer, type StartedPostgreSqlContainer } from '@testcontainers/postgresql';
import pg from 'pg';
import {
  type ClusterProvider,
  type ClusterSpec,
  type PostgresCluster,
  roleSettings,
} from '../../adapters/local-postgres/cluster.js';

/**
 * Runs each cluster in a Docker container (`LOCKSTEP_TEST_PROVIDER=testcontainers`),
 * for machines with a Docker engine. The image is `LOCKSTEP_TEST_IMAGE`
 * (default `postgres:17`). Stopping and starting a server keeps the container
 * and its data: `pg_ctl` runs inside it under a supervisor-free entrypoint.
 */
export class TestcontainersClusterProvider implements ClusterProvider {
  readonly name = 'testcontainers';

  constructor(private readonly image = process.env.LOCKSTEP_TEST_IMAGE ?? 'postgres:17') {}

  async start(spec: ClusterSpec): Promise<PostgresCluster> {
    if (spec.tls)
      throw new Error('TLS-only clusters need the local provider (LOCKSTEP_TEST_PROVIDER=local)');
    const settings = { ...roleSettings(spec.role), ...spec.settings };
    const args = Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
    const container = await new PostgreSqlContainer(this.image)
      .withUsername('postgres')
      .withPassword('postgres')
      .withDatabase('postgres')
      // Keep the container alive across server restarts: PID 1 is a shell, not postgres.
      .withEntrypoint(['bash', '-c'])
      .withCommand([
        `docker-entrypoint.sh postgres ${args.map((a) => `'${a}'`).join(' ')} & while true; do sleep 3600; done`,
      ])
      .start();
    const major = Number(
      (await container.exec(['postgres', '--version'])).output.match(
        /\(PostgreSQL\)\s+(\d+)/,
      )?.[1] ?? 0,
    );
    return new ContainerCluster(spec, container, major);
  }
}

class ContainerCluster implements PostgresCluster {
  readonly name: string;
  readonly role: PostgresCluster['role'];
  readonly host: string;
  readonly port: number;
  readonly url: string;
  private pool: pg.Pool | null = null;

  constructor(
    spec: ClusterSpec,
    private readonly container: StartedPostgreSqlContainer,
    readonly major: number,
  ) {
    this.name = spec.name ?? spec.role;
    this.role = spec.role;
    this.host = container.getHost();
    this.port = container.getPort();
    this.url = container.getConnectionUri();
  }

  urlFor(options: { database?: string; user?: string; password?: string }): string {
    const user = encodeURIComponent(options.user ?? 'postgres');
    const password = `:${encodeURIComponent(options.password ?? 'postgres')}`;
    return `postgres://${user}${password}@${this.host}:${this.port}/${encodeURIComponent(options.database ?? 'postgres')}`;
  }

  async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> {
    if (!this.pool) {
      this.pool = new pg.Pool({ connectionString: this.url, max: 4 });
      this.pool.on('error', () => undefined);
    }
    return (await this.pool.query<R>(sql, params)).rows;
  }

  async stopServer(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.pool?.end().catch(() => undefined);
    this.pool = null;
    await this.pgCtl(['stop', '-m', mode, '-w']);
  }

  async startServer(): Promise<void> {
    await this.pgCtl(['start', '-w', '-l', '/tmp/server.log']);
  }

  async freezeServer(): Promise<void> {
    await this.signalServer('STOP');
  }

  async thawServer(): Promise<void> {
    await this.signalServer('CONT');
  }

  async destroy(): Promise<void> {
    await this.pool?.end().catch(() => undefined);
    this.pool = null;
    await this.container.stop();
  }

  /** Signals every postgres process in the container (the exec's own shell is not one). */
  private async signalServer(signal: 'STOP' | 'CONT'): Promise<void> {
    const result = await this.container.exec([
      'bash',
      '-c',
      `for p in $(pgrep -x postgres); do kill -${signal} "$p"; done`,
    ]);
    if (result.exitCode !== 0) throw new Error(`signalling postgres failed: ${result.output}`);
  }

  private async pgCtl(args: string[]): Promise<void> {
    const result = await this.container.exec([
      'bash',
      '-c',
      `gosu postgres pg_ctl -D "$PGDATA" ${args.join(' ')}`,
    ]);
    if (result.exitCode !== 0) throw new Error(`pg_ctl ${args[0]} failed: ${result.output}`);
  }
}
