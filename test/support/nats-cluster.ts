import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runDirectory } from '../../adapters/local-postgres/run-directory.js';
import { freePort } from './free-port.js';
import { killNatsNode, NATS_DIR_PREFIX, NATS_PID_FILE } from './nats-sweep.js';

const NATS_SERVER = process.env.LOCKSTEP_NATS_SERVER ?? 'nats-server';

/** One server of the cluster; its ports stay the same across restarts. */
interface NatsNode {
  readonly name: string;
  readonly dir: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly httpPort: number;
  process: ChildProcess | null;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`NATS test cluster: ${what} did not happen`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function monitor(node: NatsNode, endpoint: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${node.httpPort}/${endpoint}`);
  if (!response.ok) throw new Error(`${endpoint}: ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

/**
 * A JetStream cluster of nats-server processes on loopback, each with its own
 * configuration and store under the test run directory; a node can be killed
 * and restarted, and everything goes with {@link destroy}.
 */
export class NatsCluster {
  private constructor(
    private readonly dir: string,
    private readonly nodes: NatsNode[],
  ) {}

  /**
   * Starts `size` servers (3 by default) and waits until JetStream has a meta
   * leader. Ports are only free "a moment ago" (other test files start
   * servers meanwhile), so a cluster that does not come up is started again
   * on new ports, at most three times.
   */
  static async start(options: { size?: number; maxPayload?: number } = {}): Promise<NatsCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsCluster.startOnce(options);
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }
  }

  private static async startOnce(options: {
    size?: number;
    maxPayload?: number;
  }): Promise<NatsCluster> {
    const dir = mkdtempSync(path.join(runDirectory(), NATS_DIR_PREFIX));
    const nodes: NatsNode[] = [];
    for (let i = 1; i <= (options.size ?? 3); i++) {
      const [port, clusterPort, httpPort] = [await freePort(), await freePort(), await freePort()];
      nodes.push({
        name: `n${i}`,
        dir: path.join(dir, `n${i}`),
        port,
        clusterPort,
        httpPort,
        process: null,
      });
    }
    for (const node of nodes) writeNodeConfig(node, nodes, options.maxPayload);
    const cluster = new NatsCluster(dir, nodes);
    process.once('exit', () => cluster.killAllSync());
    try {
      for (const node of nodes) cluster.spawn(node);
      await cluster.ready();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** Client URLs of every node, comma-separated (what `bus.url` takes). */
  get url(): string {
    return this.nodes.map((n) => `nats://127.0.0.1:${n.port}`).join(',');
  }

  /** The client URL of node `index` alone. */
  nodeUrl(index: number): string {
    return `nats://127.0.0.1:${this.node(index).port}`;
  }

  get size(): number {
    return this.nodes.length;
  }

  /** SIGKILLs node `index` and waits until it is gone. */
  async kill(index: number): Promise<void> {
    const node = this.node(index);
    const child = node.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    node.process = null;
  }

  /** Starts node `index` again (same ports and store) and waits until the cluster is ready. */
  async restart(index: number): Promise<void> {
    const node = this.node(index);
    if (node.process) return;
    this.spawn(node);
    await this.ready();
  }

  /** Sends `signal` to node `index`: SIGSTOP makes a node that hangs rather than fails, SIGCONT ends that. */
  signal(index: number, signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.node(index).process?.kill(signal);
  }

  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
  }

  async restartAll(): Promise<void> {
    for (const node of this.nodes) if (!node.process) this.spawn(node);
    await this.ready();
  }

  /** Kills every node and removes the cluster's directory. */
  async destroy(): Promise<void> {
    await this.killAll();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Every running node answers, and JetStream has a meta leader the running nodes agree on. */
  async ready(): Promise<void> {
    const running = this.nodes.filter((n) => n.process);
    await until('JetStream meta leader election', async () => {
      const leaders = await Promise.all(
        running.map(async (node) => {
          await monitor(node, 'healthz');
          const jsz = await monitor(node, 'jsz');
          return (jsz.meta_cluster as { leader?: string } | undefined)?.leader ?? '';
        }),
      );
      const [first] = leaders;
      return !!first && leaders.every((l) => l === first);
    });
  }

  private node(index: number): NatsNode {
    const node = this.nodes[index];
    if (!node) throw new Error(`the NATS test cluster has no node ${index}`);
    return node;
  }

  private spawn(node: NatsNode): void {
    const child = spawn(NATS_SERVER, ['-c', path.join(node.dir, 'server.conf')], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    child.once('error', () => {
      node.process = null;
    });
    node.process = child;
  }

  private killAllSync(): void {
    for (const node of this.nodes) killNatsNode(node.dir);
  }
}

function writeNodeConfig(node: NatsNode, nodes: readonly NatsNode[], maxPayload?: number): void {
  mkdirSync(path.join(node.dir, 'store'), { recursive: true });
  const routes = nodes
    .filter((other) => other !== node)
    .map((other) => `"nats://127.0.0.1:${other.clusterPort}"`);
  const lines = [
    `server_name: "${node.name}"`,
    `listen: "127.0.0.1:${node.port}"`,
    `http: "127.0.0.1:${node.httpPort}"`,
    `pid_file: "${path.join(node.dir, NATS_PID_FILE)}"`,
    `jetstream { store_dir: "${path.join(node.dir, 'store')}" }`,
    ...(maxPayload ? [`max_payload: ${maxPayload}`] : []),
    ...(nodes.length > 1
      ? [
          'cluster {',
          '  name: "lockstep"',
          `  listen: "127.0.0.1:${node.clusterPort}"`,
          `  routes: [${routes.join(', ')}]`,
          '}',
        ]
      : []),
  ];
  writeFileSync(path.join(node.dir, 'server.conf'), `${lines.join('\n')}\n`);
}
