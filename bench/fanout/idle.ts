/**
 * bench:agent-idle — what bus agents cost with nothing, or little, to apply
 * (issue 20). For each N of $BENCH_IDLE_N (default "1 16"): a rig as
 * bench:fanout's on the bus (`lockstep run` publishing, one `lockstep agent`
 * per replica), 15 s to settle, then $BENCH_IDLE_SECONDS (60) with no writes on
 * the primary, then as long under pgbench -R $BENCH_IDLE_RATE (20). For each
 * phase: CPU ms per second of an agent (utime + stime from /proc), of its
 * replica's backends (the agent's connections), of the NATS servers together
 * and of the publisher. With $BENCH_CPU_PROF=DIR the agents and the publisher
 * write V8 CPU profiles there as they exit; $BENCH_NODE_ARGS are Node flags
 * for them.
 */

import { sleep } from '../../plugin/support/sleep.js';
import { useBuiltCli } from '../../test/support/lockstep-process.js';
import { pgbench } from '../support/bench-cluster.js';
import { totalCpuSeconds } from './proc-cpu.js';
import { type Rig, setUpRig, tearDown } from './rig.js';
import { startTransport } from './transport.js';

const env = process.env;
const COUNTS = (env.BENCH_IDLE_N ?? '1 16').split(/[ ,]+/).filter(Boolean).map(Number);
const SECONDS = Number(env.BENCH_IDLE_SECONDS ?? 60);
const RATE = Number(env.BENCH_IDLE_RATE ?? 20);
const NODE_FLAGS = [
  ...(env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${env.BENCH_CPU_PROF}`] : []),
  // Node (V8) flags for the running processes, e.g. to see what tiering does at a light load.
  ...(env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
];

/** Pids of the replicas' client backends (the agents' connections; the bench holds none then). */
async function backendPids(rig: Rig): Promise<number[]> {
  const pids: number[] = [];
  for (const cluster of rig.clusters) {
    const rows = await cluster.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname <> 'postgres'`,
    );
    pids.push(...rows.map((r) => r.pid));
  }
  return pids;
}

/** Transactions (each statement outside one counts) and sessions opened on the replica databases so far. */
async function replicaCounts(rig: Rig): Promise<{ xacts: number; sessions: number }> {
  let xacts = 0;
  let sessions = 0;
  for (const cluster of rig.clusters) {
    const [row] = await cluster.query<{ x: string; s: string }>(
      `SELECT sum(xact_commit + xact_rollback)::text AS x, sum(sessions)::text AS s
         FROM pg_stat_database WHERE datname <> 'postgres' AND datname NOT LIKE 'template%'`,
    );
    xacts += Number(row?.x ?? 0);
    sessions += Number(row?.s ?? 0);
  }
  return { xacts, sessions };
}

type Reading = { agents: number; backends: number; nats: number; sidecar: number };

async function phase(rig: Rig, running: ReturnType<typeof startTransport>, load: boolean) {
  const pids = await backendPids(rig);
  const read = (): Reading => ({ ...running.cpu(), backends: totalCpuSeconds(pids) });
  const counts = await replicaCounts(rig);
  const before = read();
  const t0 = performance.now();
  if (load)
    await pgbench(rig.primary, ['-n', '-c', '2', '-T', String(SECONDS), '-R', String(RATE)]);
  else await sleep(SECONDS * 1000);
  const after = read();
  const wall = (performance.now() - t0) / 1000;
  const n = rig.replicas.length;
  const countsAfter = await replicaCounts(rig);
  const per = (k: keyof Reading, each: number) => ((after[k] - before[k]) / wall / each) * 1000;
  return {
    agentMsPerS: per('agents', n),
    backendMsPerS: per('backends', n),
    backendCount: pids.length,
    natsMsPerS: per('nats', 1),
    publisherMsPerS: per('sidecar', 1),
    replicaXactsPerS: (countsAfter.xacts - counts.xacts) / wall / n,
    replicaSessionsPerS: (countsAfter.sessions - counts.sessions) / wall / n,
  };
}

for (const n of COUNTS) {
  console.error(`N=${n}: setting up`);
  useBuiltCli();
  const rig = await setUpRig(n, 'bus');
  // Profiles of the running processes only (not attach's).
  useBuiltCli(undefined, NODE_FLAGS);
  const running = startTransport(rig);
  try {
    // Settled: every agent's status written, start-up work done.
    await sleep(15_000);
    const idle = await phase(rig, running, false);
    const light = await phase(rig, running, true);
    console.log(JSON.stringify({ n, seconds: SECONDS, idle, [`rate${RATE}`]: light }));
  } finally {
    await running.stop();
    await tearDown(rig);
  }
}
