import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  machineBusySeconds,
  parentPid,
  reapedChildrenCpuSeconds,
  treeCpuSeconds,
} from './proc-cpu.js';
import type { Rig } from './rig.js';
import type { Running } from './transport.js';

/** CPU seconds so far, per part of the run, and the machine's busy seconds beside the wall clock. */
export interface CpuTotals {
  readonly sidecar: number;
  readonly agents: number;
  readonly nats: number;
  /** Every process of the replica clusters (postmasters, backends, ended backends). */
  readonly replicaPg: number;
  readonly primaryPg: number;
  /** Children of the bench that ended: pgbench, once its run is over. */
  readonly pgbench: number;
  /** Every core's busy time, whatever ran it. */
  readonly machine: number;
  readonly wallSeconds: number;
}

/** The parts a run's CPU is read in, the machine's busy time last. */
export const CPU_PARTS = [
  'sidecar',
  'agents',
  'nats',
  'replicaPg',
  'primaryPg',
  'pgbench',
  'machine',
] as const;
export type CpuPart = (typeof CPU_PARTS)[number];

/** The postmaster's pid: the checkpointer's parent (a backend of our own would end with its query). */
async function postmasterPid(cluster: PostgresCluster): Promise<number> {
  const [row] = await cluster.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'`,
  );
  const pid = row ? parentPid(row.pid) : null;
  if (pid === null) throw new Error(`no postmaster found for ${cluster.name}: is it running here?`);
  return pid;
}

/** Reads every part's CPU so far; the postmasters are looked up once. */
export async function cpuMeter(rig: Rig, running: Running): Promise<() => CpuTotals> {
  const primary = await postmasterPid(rig.primary);
  const replicas = await Promise.all(rig.clusters.map(postmasterPid));
  return () => ({
    ...running.cpu(),
    replicaPg: replicas.reduce((sum, pid) => sum + treeCpuSeconds(pid), 0),
    primaryPg: treeCpuSeconds(primary),
    pgbench: reapedChildrenCpuSeconds(process.pid),
    machine: machineBusySeconds(),
    wallSeconds: performance.now() / 1000,
  });
}
