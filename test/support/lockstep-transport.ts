import { afterEach, expect } from 'vitest';
import { appliedVersion, eventually, waitForMarker } from './compare-nodes.js';
import { LockstepProcess, startAgent } from './lockstep-process.js';
import type { NatsCluster } from './nats-cluster.js';
import { type AttachedClusters, useAttached } from './use-attached.js';
import { useNatsCluster } from './use-nats-cluster.js';

/**
 * How packets reach replicas: `inProcess`, one `lockstep run` applying to
 * every replica; `bus`, `lockstep run` publishing to a 3-node JetStream
 * cluster and one `lockstep agent --replica NAME` beside each replica.
 */
export type TransportName = 'inProcess' | 'bus';

const ALL_TRANSPORTS: readonly TransportName[] = ['inProcess', 'bus'];

/**
 * The shared suite runs every case on each of these (`describe.each(transports)`):
 * both, unless `LOCKSTEP_TEST_TRANSPORTS` names some (comma-separated); CI's
 * second server major runs `inProcess` only, as it leaves out the bus files.
 */
export const transports: readonly TransportName[] = chosenTransports(
  process.env.LOCKSTEP_TEST_TRANSPORTS,
);

function chosenTransports(text: string | undefined): readonly TransportName[] {
  if (!text?.trim()) return ALL_TRANSPORTS;
  const named = text.split(',').map((name) => name.trim());
  const unknown = named.filter((name) => !ALL_TRANSPORTS.includes(name as TransportName));
  if (unknown.length > 0)
    throw new Error(`LOCKSTEP_TEST_TRANSPORTS: unknown ${unknown.join(', ')} (inProcess, bus)`);
  return ALL_TRANSPORTS.filter((name) => named.includes(name));
}

/** What {@link useReplication} needs: the nodes, their schema and seed, and configuration on top. */
export interface ReplicationOptions {
  replicas: number;
  /** Created on every node; a `marker` table is added when the schema has none (for {@link Replication.converged}). */
  schema: string;
  seed?: string;
  config?: Record<string, unknown>;
}

/** Attached clusters and the lockstep processes that replicate them, the same API on either transport. */
export interface Replication extends AttachedClusters {
  readonly transport: TransportName;
  /** `lockstep run`: the sidecar in process, the publisher and coordinator with bus. */
  readonly coordinator: LockstepProcess;
  /** The NATS cluster's URL (bus only). */
  readonly busUrl: string;
  /** The NATS cluster (bus only). */
  readonly nats: NatsCluster;
  /** The process that applies to `replica`: the sidecar in process, that replica's agent with bus. */
  applier(replica: string): LockstepProcess;
  /** Starts whatever is not running (all of it at first; later what was killed or exited). */
  start(env?: NodeJS.ProcessEnv): void;
  /** Starts `lockstep run` alone if it is not running (bus: agents that are down stay down). */
  startCoordinator(env?: NodeJS.ProcessEnv): void;
  /** Stops every process with SIGTERM (resuming a paused one first); each must exit 0. */
  stop(): Promise<void>;
  restart(env?: NodeJS.ProcessEnv): Promise<void>;
  /** SIGKILLs the process that applies to `replica` and waits for it to die; {@link start} brings it back. */
  kill(replica: string): Promise<void>;
  /** SIGSTOPs the process that applies to `replica` ({@link resume} sends SIGCONT). */
  pause(replica: string): void;
  resume(replica: string): void;
  /** Waits until every replica has applied everything committed so far: version >= the primary's. */
  converged(ms?: number): Promise<void>;
}

const exited = (p: LockstepProcess) => p.child.exitCode !== null || p.child.signalCode !== null;

const MARKER = 'CREATE TABLE IF NOT EXISTS marker (id bigserial PRIMARY KEY);';

/** The recorded head of the stream on the primary (`lockstep.streams`). */
async function headVersion(clusters: AttachedClusters): Promise<number> {
  const [row] = await clusters.primary.query<{ v: string }>(
    'SELECT max(version)::text AS v FROM lockstep.streams',
  );
  return Number(row?.v ?? 0);
}

/**
 * Clusters attached for `transport`, and the processes that replicate them
 * (not started: tests call `start`). Call inside the transport's `describe`:
 * the bus's NATS cluster is started only for the bus. Processes a test left
 * running are stopped after it.
 */
export function useReplication(transport: TransportName, options: ReplicationOptions): Replication {
  const nats = transport === 'bus' ? useNatsCluster() : null;
  const config: Record<string, unknown> = { ...options.config };
  if (nats)
    // Read when the file is written (in beforeAll): the NATS cluster is up by then.
    Object.defineProperty(config, 'bus', {
      enumerable: true,
      get: () => ({ url: nats.cluster.url, replicas: 3 }),
    });
  const clusters = useAttached({ ...options, schema: `${options.schema};\n${MARKER}`, config });
  const processes = new Map<string, LockstepProcess>();
  const paused = new Set<string>();
  const names = () => clusters.replicas.map((r) => r.name);
  const run = (env: NodeJS.ProcessEnv) =>
    new LockstepProcess(['run', '--config', clusters.configFile], env);
  const agent = (replica: string) => startAgent(clusters.configFile, replica);
  const keyOf = (replica: string) => (nats ? replica : 'run');
  const running = (key: string) => {
    const p = processes.get(key);
    if (!p) throw new Error(`no lockstep process for ${key}: call start() first`);
    return p;
  };
  const stop = async () => {
    for (const [key, p] of processes) {
      // One that exited by itself (a fault point) was checked by its test.
      if (exited(p)) continue;
      if (paused.delete(key)) p.kill('SIGCONT');
      p.kill('SIGTERM');
      expect({ process: key, code: await p.exited }).toEqual({ process: key, code: 0 });
    }
    processes.clear();
  };
  const startOnce = (key: string, create: () => LockstepProcess) => {
    const p = processes.get(key);
    if (!p || exited(p)) processes.set(key, create());
  };
  afterEach(async () => {
    await stop();
  });
  const replication: Replication = {
    transport,
    get primary() {
      return clusters.primary;
    },
    get replicas() {
      return clusters.replicas;
    },
    get configFile() {
      return clusters.configFile;
    },
    get attachOutput() {
      return clusters.attachOutput;
    },
    get coordinator() {
      return running('run');
    },
    get busUrl() {
      return replication.nats.url;
    },
    get nats() {
      if (!nats) throw new Error('the NATS cluster is for the bus transport only');
      return nats.cluster;
    },
    applier: (replica) => running(keyOf(replica)),
    startCoordinator(env = {}) {
      startOnce('run', () => run(env));
    },
    start(env = {}) {
      // Agents first: a coordinator's first round then finds them listening (fault points count rounds).
      if (nats) for (const name of names()) startOnce(name, () => agent(name));
      startOnce('run', () => run(env));
    },
    stop,
    async restart(env = {}) {
      await stop();
      replication.start(env);
    },
    async kill(replica) {
      const key = keyOf(replica);
      const p = running(key);
      p.kill('SIGKILL');
      await p.exited;
      processes.delete(key);
      paused.delete(key);
    },
    pause(replica) {
      running(keyOf(replica)).kill('SIGSTOP');
      paused.add(keyOf(replica));
    },
    resume(replica) {
      running(keyOf(replica)).kill('SIGCONT');
      paused.delete(keyOf(replica));
    },
    async converged(ms = 120_000) {
      await waitForMarker(clusters.primary, clusters.replicas, ms);
      // The head is recorded a moment after the marker's packet is published: wait for it too.
      await eventually(
        async () => {
          const head = await headVersion(clusters);
          const applied = await Promise.all(clusters.replicas.map(appliedVersion));
          return applied.every((v) => v >= head);
        },
        'every replica at the recorded head',
        ms,
      );
    },
  };
  return replication;
}
