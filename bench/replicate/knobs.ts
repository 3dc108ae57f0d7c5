/** bench:replicate's knobs (environment variables; run.ts's header documents them). */
const env = process.env;

export const SCALE = Number(env.BENCH_SCALE ?? 10);
export const WIDE_ROWS = Number(env.BENCH_WIDE_ROWS ?? 2_000);
export const PGBENCH_SECONDS = Number(env.BENCH_PGBENCH_SECONDS ?? 30);
export const BACKLOG_SECONDS = Number(env.BENCH_BACKLOG_SECONDS ?? 15);
export const BULK_ROWS = Number(env.BENCH_BULK_ROWS ?? 1_000_000);
export const STAGES = new Set((env.BENCH_STAGES ?? 'a b c d').split(/[ ,]+/));
export const REPS = Number(env.BENCH_REPS ?? 3);
/** Systems to run; those whose software is missing are skipped with a message. */
export const SYSTEMS = new Set(
  (env.BENCH_SYSTEMS ?? 'native lockstep pglogical pgcopydb').split(/[ ,]+/),
);
/** Node flags of every lockstep process: BENCH_NODE_FLAGS, and a CPU profile into BENCH_CPU_PROF. */
export const NODE_FLAGS = [
  ...(env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean),
  ...(env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${env.BENCH_CPU_PROF}`] : []),
];
/** Native's apply launcher starts a worker at most every wal_retrieve_retry_interval (5 s). */
export const LAUNCHER_WAIT_MS = 5_500;
