import { execFile } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import {
  type ClusterProvider,
  type ClusterRole,
  type ClusterSpec,
  type PostgresCluster,
  roleSettings,
} from './cluster.js';
import { makeTlsOnly } from './cluster-tls.js';
import {
  asServerUser,
  chownToServerUser,
  ensureServerUser,
  runsAsRoot,
  serverUserCanExecute,
} from './os-user.js';
import { type PgBinaries, resolvePgBinaries } from './pg-binaries.js';
import { ownerFile, runDirectory, stopServerSync } from './run-directory.js';
import { signalServer } from './server-processes.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** Options of the local provider. */
export interface LocalProviderOptions {
  /** Binaries to use; resolved by {@link resolvePgBinaries} when omitted. */
  readonly binaries?: PgBinaries;
  /**
   * Test speed over durability: fsync and full-page writes off. Safe for tests
   * that stop servers with `immediate` (the OS keeps the pages); benchmarks
   * turn it off to measure real commits.
   */
  readonly fast?: boolean;
  /**
   * Stop the clusters and exit on SIGINT/SIGTERM/SIGHUP (default true). A
   * program that handles those signals itself turns this off; clusters are
   * still stopped when the process exits.
   */
  readonly stopOnSignals?: boolean;
}

async function runAsServer(file: string, args: string[]): Promise<string> {
  const [cmd, cmdArgs] = asServerUser(file, args);
  const { stdout } = await run(cmd, cmdArgs, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Live clusters of this process, stopped on any exit path. */
const live = new Set<LocalCluster>();
let exitHooksInstalled = false;

let signalHooksInstalled = false;

function installExitHooks(onSignals: boolean): void {
  if (!exitHooksInstalled) {
    exitHooksInstalled = true;
    process.once('exit', () => {
      for (const cluster of live) cluster.destroySync();
    });
  }
  if (!onSignals || signalHooksInstalled) return;
  signalHooksInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const cluster of live) cluster.destroySync();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * Starts real PostgreSQL clusters from local binaries, each in its own
 * temporary directory on a free loopback port, as an unprivileged OS user when
 * the tests run as root. A template made by one `initdb` per run is copied for
 * each cluster.
 */
export class LocalClusterProvider implements ClusterProvider {
  readonly name = 'local';
  readonly binaries: PgBinaries;
  private bin: string;
  private readonly fast: boolean;
  private readonly stopOnSignals: boolean;

  constructor(options: LocalProviderOptions = {}) {
    this.stopOnSignals = options.stopOnSignals ?? true;
    this.binaries = options.binaries ?? resolvePgBinaries();
    this.bin = this.binaries.bin;
    this.fast = options.fast ?? true;
  }

  async start(spec: ClusterSpec): Promise<PostgresCluster> {
    ensureServerUser();
    installExitHooks(this.stopOnSignals);
    const runDir = runDirectory();
    this.bin = this.usableBin(runDir);
    const template = await this.template(runDir);
    const name = spec.name ?? spec.role;
    const dir = mkdtempSync(path.join(runDir, `${name.replace(/[^a-zA-Z0-9_-]/g, '_')}-`));
    chmodSync(dir, 0o755); // the server user must reach data/ inside it
    writeFileSync(ownerFile(dir), String(process.pid));
    writeFileSync(path.join(dir, 'pg_ctl.path'), path.join(this.bin, 'pg_ctl'));
    const dataDir = path.join(dir, 'data');
    cpSync(template, dataDir, { recursive: true, preserveTimestamps: true });
    chownToServerUser(dataDir);
    const settings = { ...roleSettings(spec.role), ...(this.fast ? FAST : {}), ...spec.settings };
    const tls = spec.tls ? { caFile: makeTlsOnly(dir, dataDir, spec.tls.hba).certFile } : undefined;
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const cluster = new LocalCluster(
        name,
        spec.role,
        dir,
        dataDir,
        port,
        this.bin,
        this.binaries.major,
        tls,
      );
      appendFileSync(
        path.join(dataDir, 'postgresql.conf'),
        `\n# lockstep test harness\nlisten_addresses = '${HOST}'\nport = ${port}\nunix_socket_directories = '${dataDir}'\n${Object.entries(
          settings,
        )
          .map(([key, value]) => `${key} = '${value}'`)
          .join('\n')}\n`,
      );
      live.add(cluster);
      try {
        await cluster.startServer();
        return cluster;
      } catch (error) {
        live.delete(cluster);
        const log = existsSync(cluster.logFile) ? readFileSync(cluster.logFile, 'utf8') : '';
        if (attempt < 4 && /could not bind|Address already in use/i.test(log)) continue;
        cluster.destroySync();
        throw new Error(
          `could not start ${name} (${this.bin}): ${(error as Error).message}\n${log.slice(-2000)}`,
        );
      }
    }
  }

  /** When root, the embedded binaries may sit where the server user cannot reach: copy them out. */
  private usableBin(runDir: string): string {
    const postgres = path.join(this.bin, 'postgres');
    if (!runsAsRoot() || serverUserCanExecute(postgres)) return this.bin;
    const native = path.resolve(this.bin, '..');
    const copy = path.join(runDir, `template-bin-${this.binaries.major}`);
    if (!existsSync(path.join(copy, 'bin', 'postgres'))) {
      const tmp = `${copy}.${process.pid}`;
      cpSync(native, tmp, { recursive: true, verbatimSymlinks: true });
      try {
        renameSync(tmp, copy);
      } catch {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const bin = path.join(copy, 'bin');
    if (!serverUserCanExecute(path.join(bin, 'postgres'))) {
      throw new Error(`the server user cannot execute ${bin}/postgres; make ${runDir} readable`);
    }
    return bin;
  }

  private async template(runDir: string): Promise<string> {
    const template = path.join(runDir, `template-${this.binaries.major}-${hash(this.bin)}`);
    if (existsSync(path.join(template, 'PG_VERSION'))) return template;
    const tmp = `${template}.${process.pid}.${Date.now()}`;
    if (runsAsRoot()) {
      await run('mkdir', ['-p', tmp]);
      chownToServerUser(tmp);
    }
    await runAsServer(path.join(this.bin, 'initdb'), [
      '-D',
      tmp,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    try {
      renameSync(tmp, template);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another worker made it first
    }
    return template;
  }
}

const FAST = { fsync: 'off', full_page_writes: 'off', shared_buffers: '128MB' };

function hash(text: string): string {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
}

class LocalCluster implements PostgresCluster {
  readonly host = HOST;
  readonly url: string;
  readonly logFile: string;
  private pool: pg.Pool | null = null;

  constructor(
    readonly name: string,
    readonly role: ClusterRole,
    private readonly dir: string,
    private readonly dataDir: string,
    readonly port: number,
    private readonly bin: string,
    readonly major: number,
    readonly tls?: { readonly caFile: string },
  ) {
    this.url = this.urlFor({});
    this.logFile = path.join(dir, 'server.log');
  }

  urlFor(options: { database?: string; user?: string; password?: string }): string {
    const user = encodeURIComponent(options.user ?? 'postgres');
    const password = options.password ? `:${encodeURIComponent(options.password)}` : '';
    // A TLS-only cluster is reached with the strictest mode, so its URL works wherever a URL is used.
    const tls = this.tls
      ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(this.tls.caFile)}`
      : '';
    return `postgres://${user}${password}@${HOST}:${this.port}/${encodeURIComponent(options.database ?? 'postgres')}${tls}`;
  }

  async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> {
    if (!this.pool) {
      this.pool = new pg.Pool({ connectionString: this.url, max: 4 });
      this.pool.on('error', () => undefined);
    }
    const result = await this.pool.query<R>(sql, params);
    return result.rows;
  }

  async startServer(): Promise<void> {
    if (runsAsRoot()) {
      writeFileSync(this.logFile, '', { flag: 'a' });
      chownToServerUser(this.logFile);
    }
    await runAsServer(path.join(this.bin, 'pg_ctl'), [
      '-D',
      this.dataDir,
      '-l',
      this.logFile,
      '-w',
      '-t',
      '60',
      'start',
    ]);
  }

  async stopServer(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.closePool();
    await runAsServer(path.join(this.bin, 'pg_ctl'), [
      '-D',
      this.dataDir,
      '-m',
      mode,
      '-w',
      '-t',
      '60',
      'stop',
    ]);
  }

  async freezeServer(): Promise<void> {
    signalServer(this.dataDir, 'SIGSTOP');
  }

  async thawServer(): Promise<void> {
    signalServer(this.dataDir, 'SIGCONT');
  }

  async destroy(): Promise<void> {
    await this.closePool();
    this.destroySync();
  }

  /** Synchronous teardown, usable from exit handlers. */
  destroySync(): void {
    live.delete(this);
    // A frozen server would never stop.
    signalServer(this.dataDir, 'SIGCONT');
    stopServerSync(path.join(this.bin, 'pg_ctl'), this.dataDir);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async closePool(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end().catch(() => undefined);
  }
}
