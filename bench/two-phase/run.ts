/**
 * bench:two-phase — the pgbench workload with no table critical (every packet
 * one-phase) against the same with every table critical (every packet
 * two-phase), in one run, on one set of clusters (1 primary → 2 replicas):
 *
 *   steady: pgbench -c 4 -j 2 -T $BENCH_PGBENCH_SECONDS while replicating —
 *           replicated txn/s (pgbench's transactions ÷ time until the last is
 *           on both replicas), and commit → visible-on-all latency p50/p99 of
 *           probe rows written during the run;
 *   backlog: the sidecar stopped during $BENCH_BACKLOG_SECONDS of pgbench, then
 *           started: apply txn/s until the backlog is on both replicas.
 *
 * Target (issue 4): two-phase throughput ≥ 50% of one-phase. Data equality is
 * checked after each mode. Not part of `npm test`; needs pgbench and pg_dump.
 */
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';
import {
  LockstepProcess,
  lockstep,
  useBuiltCli,
  writeConfig,
} from '../../test/support/lockstep-process.js';
import {
  BASELINE_SETTINGS,
  benchProvider,
  copySchema,
  historyCount,
  identical,
  mark,
  pgbench,
  waitOnAll,
} from '../support/bench-cluster.js';

// The sidecar runs as users run it: the built CLI (the npm script builds it first).
useBuiltCli();

const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 20);
const BACKLOG_SECONDS = Number(process.env.BENCH_BACKLOG_SECONDS ?? 10);

const now = () => performance.now();

function percentile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Writes probe rows one after another until stopped; each one's commit → visible-on-both time, ms. */
function probeLatencies(p: PostgresCluster, replicas: PostgresCluster[]) {
  const samples: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const id = await mark(p);
      const committed = now();
      const seen = await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${id})`);
      samples.push(seen - committed);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return samples;
    },
  };
}

interface ModeFigures {
  steadyTps: number;
  primaryTps: number;
  p50: number;
  p99: number;
  backlogTps: number;
  rounds: string;
  identical: boolean;
}

async function runMode(
  critical: boolean,
  p: PostgresCluster,
  replicas: PostgresCluster[],
  configFile: string,
): Promise<ModeFigures> {
  const name = critical ? 'every table critical' : 'no table critical';
  const start = () =>
    new LockstepProcess(['run', '--config', configFile], {
      LOCKSTEP_LOG_LEVEL: 'warn',
      LOCKSTEP_TWO_PHASE_TABLES: critical ? 'public.*' : '',
    });
  let sidecar = start();
  await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`);

  console.error(`${name}: steady pgbench -c 4 -j 2 -T ${PGBENCH_SECONDS}`);
  await p.query('VACUUM pgbench_branches, pgbench_tellers');
  const h0 = await historyCount(p);
  const probes = probeLatencies(p, replicas);
  const t0 = now();
  const primaryTps = await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(PGBENCH_SECONDS)]);
  const samples = await probes.stop();
  const last = await waitOnAll(
    replicas,
    `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`,
  );
  const steadyTps = ((await historyCount(p)) - h0) / ((last - t0) / 1000);

  console.error(`${name}: backlog of ${BACKLOG_SECONDS} s of pgbench`);
  sidecar.kill('SIGTERM');
  await sidecar.exited;
  const h1 = await historyCount(p);
  await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(BACKLOG_SECONDS)]);
  const txns = (await historyCount(p)) - h1;
  const m = await mark(p);
  const t1 = now();
  sidecar = start();
  const drained = await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${m})`);
  const backlogTps = txns / ((drained - t1) / 1000);
  const status = await lockstep(['status', '--config', configFile, '--json']);
  sidecar.kill('SIGTERM');
  await sidecar.exited;
  const twoPhase = (JSON.parse(status.output) as { twoPhase?: { roundsCommitted: number } })
    .twoPhase;
  const same = await identical(p, replicas);
  console.error(`  ${name}: ${same ? 'data identical' : 'DATA MISMATCH'}`);
  return {
    steadyTps,
    primaryTps,
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    backlogTps,
    rounds: twoPhase ? String(twoPhase.roundsCommitted) : '-',
    identical: same,
  };
}

console.error(
  `bench:two-phase on PostgreSQL ${benchProvider.binaries.major} (${benchProvider.binaries.bin})`,
);
const settings = { ...BASELINE_SETTINGS, max_prepared_transactions: 20 };
const [primary, ...replicas] = await Promise.all([
  benchProvider.start({ role: 'primary', name: 'two-phase-primary', settings: BASELINE_SETTINGS }),
  benchProvider.start({ role: 'replica', name: 'two-phase-r1', settings }),
  benchProvider.start({ role: 'replica', name: 'two-phase-r2', settings }),
]);
const p = primary as PostgresCluster;
let config: ReturnType<typeof writeConfig> | null = null;
try {
  await pgbench(p, ['-i', '-q', '-s', String(SCALE)]);
  await p.query(`ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
                 CREATE TABLE bulk (id bigint PRIMARY KEY, payload text);
                 CREATE TABLE nb_marker (id bigserial PRIMARY KEY, t timestamptz DEFAULT clock_timestamp());`);
  await copySchema(p, replicas);
  config = writeConfig(p, replicas);
  const attached = await lockstep(['attach', '--config', config.file]);
  if (attached.code !== 0) throw new Error(`attach failed:\n${attached.output}`);
  const one = await runMode(false, p, replicas, config.file);
  const two = await runMode(true, p, replicas, config.file);

  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(1));
  console.log(
    `\nbench:two-phase — PostgreSQL ${benchProvider.binaries.major}, 1 primary -> 2 replicas, scale ${SCALE}`,
  );
  console.log(
    '| measure | one-phase (none critical) | two-phase (all critical) | two/one | target |',
  );
  console.log('|---|---|---|---|---|');
  const row = (label: string, a: number, b: number, target: string) =>
    console.log(`| ${label} | ${fmt(a)} | ${fmt(b)} | ${(b / a).toFixed(2)}x | ${target} |`);
  row('steady: replicated txn/s', one.steadyTps, two.steadyTps, '>= 0.50x');
  row('steady: primary TPS (pgbench)', one.primaryTps, two.primaryTps, '');
  row('backlog: apply txn/s', one.backlogTps, two.backlogTps, '>= 0.50x');
  row('commit -> visible on all, p50 ms', one.p50, two.p50, '');
  row('commit -> visible on all, p99 ms', one.p99, two.p99, '');
  console.log(
    `| two-phase rounds committed (last sidecar run) | ${one.rounds} | ${two.rounds} | | |`,
  );
  console.log(
    one.identical && two.identical
      ? 'data identical on every replica after each mode'
      : '!! data mismatch',
  );
} finally {
  config?.remove();
  await Promise.all([p, ...replicas].map((c) => c.destroy()));
}
