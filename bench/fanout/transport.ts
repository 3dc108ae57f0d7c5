import { LockstepProcess } from '../../test/support/lockstep-process.js';
import { childPids, totalCpuSeconds } from './proc-cpu.js';
import type { Rig } from './rig.js';

const QUIET = { LOCKSTEP_LOG_LEVEL: 'warn' };

/** CPU seconds so far: the sidecar (publisher on the bus), the agents together, NATS's servers together. */
export interface CpuReading {
  readonly sidecar: number;
  readonly agents: number;
  readonly nats: number;
}

/** The lockstep processes of one run, and how to stop and bring back replica r1. */
export interface Running {
  cpu(): CpuReading;
  stopOne(): Promise<void>;
  startOne(): Promise<void>;
  stop(): Promise<void>;
}

async function ended(p: LockstepProcess | null): Promise<void> {
  if (!p || p.child.exitCode !== null) return;
  p.kill('SIGTERM');
  await p.exited;
}

/** r1's database refuses connections (and loses the ones it had): unreachable to the sidecar. */
async function setReachable(rig: Rig, reachable: boolean): Promise<void> {
  const r1 = rig.replicas[0];
  const cluster = rig.clusters[0];
  if (!r1 || !cluster) return;
  await cluster.query(`ALTER DATABASE "${r1.name}" ALLOW_CONNECTIONS ${reachable}`);
  if (!reachable)
    await cluster.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1',
      [r1.name],
    );
}

/**
 * Starts the transport's processes: `lockstep run` alone (in process), or
 * `lockstep run` publishing and one `lockstep agent` per replica (bus).
 */
export function startTransport(rig: Rig): Running {
  const file = rig.config.file;
  const sidecar = new LockstepProcess(['run', '--config', file], QUIET);
  const agent = (name: string) =>
    new LockstepProcess(['agent', '--config', file, '--replica', name], QUIET);
  const agents: (LockstepProcess | null)[] =
    rig.transport === 'bus' ? rig.replicas.map((r) => agent(r.name)) : [];
  const natsPids = rig.nats ? childPids('nats-server') : [];
  // Agents stopped and started again: their CPU until they ended still counts.
  let endedAgentsCpu = 0;
  return {
    cpu: () => ({
      sidecar: totalCpuSeconds([sidecar.child.pid]),
      agents: endedAgentsCpu + totalCpuSeconds(agents.map((a) => a?.child.pid)),
      nats: totalCpuSeconds(natsPids),
    }),
    async stopOne() {
      if (rig.transport === 'inprocess') return setReachable(rig, false);
      endedAgentsCpu += totalCpuSeconds([agents[0]?.child.pid]);
      await ended(agents[0] ?? null);
      agents[0] = null;
    },
    async startOne() {
      if (rig.transport === 'inprocess') return setReachable(rig, true);
      agents[0] = agent(rig.replicas[0]?.name as string);
    },
    async stop() {
      await Promise.all(agents.map(ended));
      await ended(sidecar);
    },
  };
}
