/** bench:fanout's knobs (environment variables; run.ts's header documents them). */
const env = process.env;

/** Replica counts to run, each with both transports. */
export const FANOUT_N = (env.BENCH_FANOUT_N ?? '1 4 16 64')
  .split(/[ ,]+/)
  .filter(Boolean)
  .map(Number);
export const SECONDS = Number(env.BENCH_SECONDS ?? 30);
/** pgbench scale: every replica gets a copy at attach, so it stays small. */
export const SCALE = Number(env.BENCH_SCALE ?? 4);
export const CLIENTS = Number(env.BENCH_CLIENTS ?? 4);
/** pgbench `-R`: the primary's transactions per second; unset, pgbench runs as fast as it can. */
export const RATE = env.BENCH_RATE ? Number(env.BENCH_RATE) : null;
/** Replica databases per local cluster (a cluster is a postmaster and its workers). */
export const DATABASES_PER_CLUSTER = Number(env.BENCH_DATABASES_PER_CLUSTER ?? 16);
/** JetStream's replication factor for the packet stream (the NATS cluster has 3 nodes). */
export const NATS_REPLICAS = Number(env.BENCH_NATS_REPLICAS ?? 3);
/** Transports to run: `inprocess` and/or `bus`. */
export const TRANSPORTS = (env.BENCH_TRANSPORTS ?? 'inprocess bus').split(/[ ,]+/);
/** How long pgbench runs with one replica stopped before the primary's retained WAL is read. */
export const STOPPED_SECONDS = Number(env.BENCH_STOPPED_SECONDS ?? Math.ceil(SECONDS / 2));
