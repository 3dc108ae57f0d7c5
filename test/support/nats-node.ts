import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NATS_PID_FILE } from './nats-sweep.js';

const NATS_SERVER = process.env.LOCKSTEP_NATS_SERVER ?? 'nats-server';
/** How much of a server's log is kept for an error (bytes). */
const LOG_TAIL = 8 * 1024;
/** How much of a start's log is kept from its beginning (what it restored, whether it became ready). */
const LOG_HEAD = 16 * 1024;
/** How long a server may take to exit on SIGTERM before it is killed (ms). */
const STOP_GRACE_MS = 5_000;

/** One server of a test cluster: its ports stay the same across restarts. */
export class NatsNode {
  private child: ChildProcess | null = null;
  /** The end of the server's log (it logs to stderr), for errors. */
  private log = '';
  private head = '';
  /** Why the running process ended when nobody asked it to (null while it runs, or once stopped on purpose). */
  private exit: string | null = null;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    readonly clusterPort: number,
    readonly httpPort: number,
  ) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts the server; a start that fails (a port taken, a bad configuration) shows in {@link check}. */
  start(): void {
    if (this.child) return;
    this.log = '';
    this.head = '';
    this.exit = null;
    const child = spawn(NATS_SERVER, ['-c', path.join(this.dir, 'server.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (data: Buffer) => {
      const text = data.toString();
      this.log = (this.log + text).slice(-LOG_TAIL);
      if (this.head.length < LOG_HEAD) this.head = (this.head + text).slice(0, LOG_HEAD);
    });
    child.once('error', (error) => {
      this.exit = `could not be started (${NATS_SERVER}): ${error.message}`;
      this.child = null;
    });
    child.once('exit', (code, signal) => {
      if (this.child !== child) return;
      this.exit = `exited (${signal ?? `code ${code}`})`;
      this.child = null;
    });
    this.child = child;
  }

  /** Throws, with the server's log, when the process ended by itself since it was started. */
  check(): void {
    if (this.exit === null) return;
    throw new Error(
      `NATS test cluster: node ${this.name} ${this.exit}; its log ends with:\n${this.log}`,
    );
  }

  /** The beginning of the server's log since it was last started (a later flood of warnings does not push it out). */
  get logHead(): string {
    return this.head;
  }

  /** The end of the server's log. */
  get logTail(): string {
    return this.log;
  }

  /** SIGKILLs the server and waits until it is gone. */
  async kill(): Promise<void> {
    await this.end('SIGKILL', 0);
  }

  /** Ends the server with SIGTERM, or SIGKILL should it still run after a grace period. */
  async stop(): Promise<void> {
    await this.end('SIGTERM', STOP_GRACE_MS);
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  private async end(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    // Stopped on purpose: not an exit {@link check} reports.
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // A paused server acts on no signal but SIGKILL until it is continued.
    child.kill('SIGCONT');
    child.kill(signal);
    if (graceMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([exited, late]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await exited;
  }

  /** Empties the store of a stopped server: it rejoins as the same peer (named by `server_name`) and copies every stream anew. */
  wipeStore(): void {
    if (this.child) throw new Error(`NATS test cluster: node ${this.name} runs; its store stays`);
    rmSync(this.storeDir, { recursive: true, force: true });
    mkdirSync(this.storeDir, { recursive: true });
  }

  private get storeDir(): string {
    return path.join(this.dir, 'store');
  }

  /** Writes the server's configuration: its ports, store, and routes to the `others`. */
  writeConfig(others: readonly NatsNode[], maxPayload?: number): void {
    mkdirSync(this.storeDir, { recursive: true });
    const routes = others.map((other) => `"nats://127.0.0.1:${other.clusterPort}"`);
    const lines = [
      `server_name: "${this.name}"`,
      `listen: "127.0.0.1:${this.port}"`,
      `http: "127.0.0.1:${this.httpPort}"`,
      `pid_file: "${path.join(this.dir, NATS_PID_FILE)}"`,
      `jetstream { store_dir: "${this.storeDir}" }`,
      // A hung peer (paused) holds its routes open: 2.9 pings routes every 2 min (2 out) and gives a
      // stalled write 10 s. Tuned as README's packet bus section advises, it is cut off in seconds.
      'ping_interval: "2s"',
      'ping_max: 2',
      'write_deadline: "2s"',
      ...(maxPayload ? [`max_payload: ${maxPayload}`] : []),
      ...(others.length > 0
        ? [
            'cluster {',
            '  name: "lockstep"',
            `  listen: "127.0.0.1:${this.clusterPort}"`,
            `  routes: [${routes.join(', ')}]`,
            '}',
          ]
        : []),
    ];
    writeFileSync(path.join(this.dir, 'server.conf'), `${lines.join('\n')}\n`);
  }
}
