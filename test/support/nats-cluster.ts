import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { runDirectory } from '../../adapters/local-postgres/run-directory.js';
import {
  hostedStreams,
  monitor,
  nodeStreamDetails,
  type StreamDetail,
  unhealthy,
} from './nats-monitor.js';
import { NatsNode } from './nats-node.js';
import { releasePorts, reservePorts } from './nats-ports.js';
import { killNatsNode, NATS_DIR_PREFIX } from './nats-sweep.js';

/** How long a cluster may take to be ready: every node answering, and a JetStream meta leader (ms). */
const READY_MS = 60_000;

/**
 * A JetStream cluster of nats-server processes on loopback, each with its own
 * configuration and store under the test run directory; a node can be killed,
 * paused and restarted, and everything goes with {@link destroy}.
 */
export class NatsCluster {
  private readonly killOnExit = () => this.killAllSync();

  private constructor(
    private readonly dir: string,
    private readonly nodes: NatsNode[],
    private readonly ports: readonly number[],
  ) {
    process.once('exit', this.killOnExit);
  }

  /**
   * Starts `size` servers (3 by default) and waits until each answers and
   * JetStream has a meta leader. Ports are reserved, never only "free a
   * moment ago"; a server that exits while starting fails the start with its
   * log.
   */
  static async start(
    options: {
      size?: number;
      maxPayload?: number;
      /** The first node's client port instead of a reserved one (a test of a port another process holds). */
      clientPort?: number;
    } = {},
  ): Promise<NatsCluster> {
    const size = options.size ?? 3;
    const dir = mkdtempSync(path.join(runDirectory(), NATS_DIR_PREFIX));
    const ports = reservePorts(3 * size);
    const nodes: NatsNode[] = [];
    for (let i = 0; i < size; i++) {
      const [reserved, clusterPort, httpPort] = ports.slice(3 * i, 3 * i + 3) as [
        number,
        number,
        number,
      ];
      const port = i === 0 ? (options.clientPort ?? reserved) : reserved;
      nodes.push(
        new NatsNode(`n${i + 1}`, path.join(dir, `n${i + 1}`), port, clusterPort, httpPort),
      );
    }
    for (const node of nodes)
      node.writeConfig(
        nodes.filter((other) => other !== node),
        options.maxPayload,
      );
    const cluster = new NatsCluster(dir, nodes, ports);
    try {
      for (const node of nodes) node.start();
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

  /** The process id of node `index`, or null when it does not run. */
  pid(index: number): number | null {
    return this.node(index).pid;
  }

  get size(): number {
    return this.nodes.length;
  }

  /** SIGKILLs node `index` and waits until it is gone. */
  async kill(index: number): Promise<void> {
    await this.node(index).kill();
  }

  /**
   * Starts node `index` again (same ports and store) and waits until the
   * cluster is ready and every copy of every stream caught up: a test that
   * takes a node away next must find the quorum it expects.
   */
  async restart(index: number): Promise<void> {
    const node = this.node(index);
    if (node.running) return;
    node.start();
    await this.ready();
    await this.caughtUp({ restartStuck: true });
  }

  /** Starts node `index` again without waiting for the cluster (which cannot be ready while others are paused). */
  startNode(index: number): void {
    this.node(index).start();
  }

  /** The indexes of the running nodes that hold a replica of `stream`. */
  async streamHosts(stream: string): Promise<number[]> {
    const hosts: number[] = [];
    for (const [index, node] of this.nodes.entries())
      if (node.running && (await nodeStreamDetails(node, stream)).length > 0) hosts.push(index);
    return hosts;
  }

  /** Sends `signal` to node `index`: SIGSTOP makes a node that hangs rather than fails, SIGCONT ends that. */
  signal(index: number, signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.node(index).signal(signal);
  }

  /** The index of the node a client named `name` is connected to (as its monitoring endpoint lists it), or -1. */
  async clientNode(name: string): Promise<number> {
    for (const [index, node] of this.nodes.entries()) {
      if (!node.running) continue;
      const connz = await monitor(node, 'connz');
      const connections = (connz.connections ?? []) as { name?: string }[];
      if (connections.some((c) => c.name === name)) return index;
    }
    return -1;
  }

  /** The index of the node leading JetStream stream `stream`, or -1. */
  async streamLeader(stream: string): Promise<number> {
    for (const detail of await this.streamDetails(stream)) {
      const leader = this.nodeNamed(detail.cluster?.leader);
      if (leader >= 0) return leader;
    }
    return -1;
  }

  /** The indexes of the nodes that host the consumers of `stream` (an agent's ordered consumer is one of them). */
  async consumerNodes(stream: string): Promise<number[]> {
    // A node lists the consumers it hosts itself: every node is asked.
    const consumers = (await this.streamDetails(stream)).flatMap((d) => d.consumer_detail ?? []);
    const nodes = consumers.map((c) => this.nodeNamed(c.cluster?.leader)).filter((i) => i >= 0);
    return [...new Set(nodes)];
  }

  /** Where each node's own copy of `stream` ends (its last sequence; -1: it hosts none or does not run). */
  async copyEnds(stream: string): Promise<number[]> {
    const ends: number[] = [];
    for (const node of this.nodes) {
      const [detail] = node.running ? await nodeStreamDetails(node, stream) : [];
      ends.push(detail?.state?.last_seq ?? -1);
    }
    return ends;
  }

  /** What each running node says of `stream`. */
  private async streamDetails(stream: string): Promise<StreamDetail[]> {
    const details: StreamDetail[] = [];
    for (const node of this.nodes) {
      if (node.running) details.push(...(await nodeStreamDetails(node, stream)));
    }
    return details;
  }

  private nodeNamed(name: string | undefined): number {
    return this.nodes.findIndex((n) => n.name === name);
  }

  private runningLogs(): string {
    return this.nodes
      .filter((n) => n.running)
      .map((n) => `${n.name}: ${n.logTail.slice(-2_000)}`)
      .join('\n');
  }

  /** The end of each node's log (for a report), or the beginning since its last start, by node name. */
  logTails(from: 'end' | 'start' = 'end'): Record<string, string> {
    return Object.fromEntries(
      this.nodes.map((n) => [n.name, from === 'end' ? n.logTail : n.logHead]),
    );
  }

  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
  }

  async restartAll(): Promise<void> {
    for (const node of this.nodes) node.start();
    await this.ready();
    await this.caughtUp({ restartStuck: true });
  }

  /** Stops every node (SIGKILL after a grace period), removes the cluster's directory and frees its ports. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    process.removeListener('exit', this.killOnExit);
    rmSync(this.dir, { recursive: true, force: true });
    releasePorts(this.ports);
  }

  /**
   * Every running node answers its health check as itself (the monitoring
   * port is this node's, not another process's), and JetStream has a meta
   * leader the running nodes agree on. A node that exited fails it at once.
   */
  async ready(): Promise<void> {
    const running = this.nodes.filter((n) => n.running);
    const deadline = Date.now() + READY_MS;
    let state: string;
    for (;;) {
      for (const node of this.nodes) node.check();
      const views = await Promise.all(running.map((node) => this.view(node)));
      const [first] = views;
      if (first?.startsWith('leader ') && views.every((v) => v === first)) return;
      state = running.map((node, i) => `${node.name}: ${views[i]}`).join('; ');
      if (Date.now() > deadline)
        throw new Error(
          `NATS test cluster: no JetStream meta leader the nodes agree on within ${READY_MS} ms (${state}); ` +
            `node logs end with:\n${running.map((n) => `${n.name}: ${n.logTail.slice(-2_000)}`).join('\n')}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * Waits until every running node passes its full health check (JetStream
   * on, each stream and consumer replica it hosts current) and, for each of
   * `streams` (by default every stream a running node hosts), holds the
   * stream as far as its leader does. A node just resumed
   * or restarted catches up first; until then the cluster has one replica
   * fewer to lose, so a test that takes another node away waits here. The
   * health check alone is not enough on nats-server 2.9: a resumed node's
   * replica can pass it while its store still ends earlier.
   */
  async caughtUp(
    options: {
      streams?: readonly string[];
      ms?: number;
      /**
       * Restart, once, a node whose copy of a stream still ends before its
       * leader's, or whose health check still fails, when `ms` ran out.
       * nats-server 2.9 can leave a resumed node's stream replica applying
       * nothing more (healthy, answering, its store stuck) or never current
       * again (a KV stream after a whole-cluster restart); a restart is what
       * an operator does then, and it catches up from its peers. The wait
       * then starts again; a node still stuck then is restarted with an
       * empty store (an operator replacing its disk).
       */
      restartStuck?: boolean;
    } = {},
  ): Promise<void> {
    const ms = options.ms ?? READY_MS;
    const streams = options.streams ?? (await hostedStreams(this.nodes));
    let stuck = await this.waitCaughtUp(streams, ms, !options.restartStuck);
    if (stuck.length === 0) return;
    await this.restartNodes(stuck);
    // A restarted replica may catch up from a snapshot first: it gets twice the time.
    stuck = await this.waitCaughtUp(streams, 2 * ms, false);
    if (stuck.length === 0) return;
    // Still stuck: 2.9 can restore a store that ends before what its raft state says it applied,
    // and a restart replays the same. An empty store rejoins as the same peer and copies it all,
    // from the others: only one node, with every other running and caught up, is ever emptied.
    // Otherwise the wait fails now, with the cluster's state.
    const [only] = stuck;
    const empty = only !== undefined && stuck.length === 1 && this.nodes.every((n) => n.running);
    if (empty) await this.restartWithEmptyStore(only);
    await this.waitCaughtUp(streams, empty ? 2 * ms : 0, true);
  }

  /**
   * SIGKILLs node `index` and starts it with an empty store, as an operator
   * replacing its disk; waits for a meta leader, not for the copies.
   */
  async restartWithEmptyStore(index: number): Promise<void> {
    await this.restartNodes([index], (node) => node.wipeStore());
  }

  /** Kills and starts `indexes` again (`whileDown` runs on each in between); waits for a meta leader. */
  private async restartNodes(
    indexes: readonly number[],
    whileDown: (node: NatsNode) => void = () => undefined,
  ): Promise<void> {
    for (const index of indexes) await this.node(index).kill();
    for (const index of indexes) whileDown(this.node(index));
    for (const index of indexes) this.node(index).start();
    await this.ready();
  }

  /** Waits up to `ms`; then throws, or returns the nodes whose stream copies are behind. */
  private async waitCaughtUp(
    streams: readonly string[],
    ms: number,
    throwOnTimeout: boolean,
  ): Promise<number[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const lagging = await this.behindLeader(streams);
      const sick = await unhealthy(this.nodes);
      const behind = [...sick.map((s) => s.why), ...lagging.map((l) => l.why)];
      if (behind.length === 0) return [];
      if (Date.now() > deadline) {
        // A node whose health check keeps failing (a stream replica that never gets
        // current again, nats-server 2.9) is stuck as well: restarted like a lagging one.
        const stuck = [
          ...lagging.flatMap((l) => (l.node === undefined ? [] : [l.node])),
          ...sick.map((s) => s.node),
        ];
        if (throwOnTimeout || stuck.length === 0)
          throw new Error(
            `NATS test cluster: not caught up within ${ms} ms (${behind.join('; ')}); ` +
              `node logs end with:\n${this.runningLogs()}`,
          );
        return [...new Set(stuck)];
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** For each of `streams`, why it is not caught up, and the node whose copy ends before its leader's. */
  private async behindLeader(
    streams: readonly string[],
  ): Promise<{ why: string; node?: number }[]> {
    const behind: { why: string; node?: number }[] = [];
    for (const stream of streams) {
      const ends = new Map<string, number>();
      let leader: string | undefined;
      let leaderView: StreamDetail | undefined;
      for (const node of this.nodes.filter((n) => n.running)) {
        const [detail] = await nodeStreamDetails(node, stream).catch((error: Error) => {
          behind.push({ why: `${node.name}: ${error.message}` });
          return [];
        });
        if (!detail) continue;
        ends.set(node.name, detail.state?.last_seq ?? 0);
        leader = detail.cluster?.leader ?? leader;
        if (detail.cluster?.leader === node.name) leaderView = detail;
      }
      // The leader's own view: a follower whose replica stopped answering is not current.
      for (const replica of leaderView?.cluster?.replicas ?? [])
        if (!replica.current)
          behind.push({
            why: `${stream}: its leader sees ${replica.name} not current`,
            node: this.nodeNamed(replica.name),
          });
      const end = leader === undefined ? undefined : ends.get(leader);
      if (end === undefined) {
        behind.push({ why: `${stream}: no running leader` });
        continue;
      }
      for (const [name, last] of ends)
        if (last < end)
          behind.push({
            why: `${name}'s ${stream} ends at ${last}, its leader's at ${end} (leader's view: ${JSON.stringify(leaderView?.cluster?.replicas?.find((r) => r.name === name) ?? null)})`,
            node: this.nodeNamed(name),
          });
    }
    return behind.map((b) => (b.node !== undefined && b.node < 0 ? { why: b.why } : b));
  }

  /** What a node says of itself: `leader NAME` once it knows the meta leader, else why not. */
  private async view(node: NatsNode): Promise<string> {
    try {
      await monitor(node, 'healthz?js-enabled-only=true');
      const varz = await monitor(node, 'varz');
      if (varz.server_name !== node.name)
        return `port ${node.httpPort} answers as ${String(varz.server_name)}`;
      const jsz = await monitor(node, 'jsz');
      const leader = (jsz.meta_cluster as { leader?: string } | undefined)?.leader;
      return leader ? `leader ${leader}` : 'no meta leader';
    } catch (error) {
      return `not answering (${(error as Error).message})`;
    }
  }

  private node(index: number): NatsNode {
    const node = this.nodes[index];
    if (!node) throw new Error(`the NATS test cluster has no node ${index}`);
    return node;
  }

  private killAllSync(): void {
    for (const node of this.nodes) killNatsNode(node.dir);
  }
}
