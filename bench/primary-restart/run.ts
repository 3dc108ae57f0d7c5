/**
 * bench:primary-restart — how long `pg_ctl stop -m fast` of the primary takes
 * with native logical replication connected and with lockstep streaming, idle
 * and under pgbench, and how long each system then takes to hold the
 * primary's data again. The walsender waits at shutdown for its client to
 * confirm the end of WAL: a client that never does holds the primary's
 * shutdown (pg_ctl gives up after 60 s). Prints its numbers; decides nothing.
 * Knobs: BENCH_SCALE (default 1), BENCH_REPS (default 3).
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
  identical,
  pgbench,
} from '../support/bench-cluster.js';

useBuiltCli();

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const REPS = Number(process.env.BENCH_REPS ?? 3);

interface Rig {
  readonly primary: PostgresCluster;
  readonly replicas: readonly PostgresCluster[];
  stop(): Promise<void>;
}

async function clusters(
  name: string,
): Promise<[PostgresCluster, PostgresCluster, PostgresCluster]> {
  const replica = { ...BASELINE_SETTINGS, max_prepared_transactions: 20 };
  const started = await Promise.all([
    benchProvider.start({ role: 'primary', name: `${name}-primary`, settings: BASELINE_SETTINGS }),
    benchProvider.start({ role: 'replica', name: `${name}-r1`, settings: replica }),
    benchProvider.start({ role: 'replica', name: `${name}-r2`, settings: replica }),
  ]);
  const [primary, r1, r2] = started as [PostgresCluster, PostgresCluster, PostgresCluster];
  await pgbench(primary, ['-i', '-q', '-s', String(SCALE)]);
  await primary.query(`ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
    CREATE TABLE bulk (id bigint PRIMARY KEY, payload text)`);
  await copySchema(primary, [r1, r2]);
  return [primary, r1, r2];
}

async function nativeRig(): Promise<Rig> {
  const [primary, r1, r2] = await clusters('native');
  const conn = `host=${primary.host} port=${primary.port} dbname=postgres user=postgres`;
  await primary.query('CREATE PUBLICATION pub FOR ALL TABLES');
  await Promise.all(
    [r1, r2].map((r, i) =>
      r.query(`CREATE SUBSCRIPTION sub${i} CONNECTION '${conn}' PUBLICATION pub`),
    ),
  );
  return {
    primary,
    replicas: [r1, r2],
    stop: async () => {
      await Promise.all([primary, r1, r2].map((c) => c.destroy()));
    },
  };
}

async function lockstepRig(): Promise<Rig> {
  const [primary, r1, r2] = await clusters('lockstep');
  const config = writeConfig(primary, [r1, r2]);
  const attached = await lockstep(['attach', '--config', config.file]);
  if (attached.code !== 0) throw new Error(`attach failed: ${attached.output}`);
  const sidecar = new LockstepProcess(['run', '--config', config.file]);
  return {
    primary,
    replicas: [r1, r2],
    stop: async () => {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
      config.remove();
      await Promise.all([primary, r1, r2].map((c) => c.destroy()));
    },
  };
}

/** Waits until both replicas hold the primary's data; ms it took. */
async function converge(rig: Rig): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + 300_000;
  while (!(await identical(rig.primary, rig.replicas).catch(() => false))) {
    if (Date.now() > deadline) return Number.NaN;
    await sleep(50);
  }
  return performance.now() - started;
}

/** One fast restart; the stop's duration (ms), or NaN when pg_ctl gave up. */
async function restart(primary: PostgresCluster): Promise<number> {
  const started = performance.now();
  let stopped = Number.NaN;
  try {
    await primary.stopServer('fast');
    stopped = performance.now() - started;
  } catch {
    // pg_ctl gave up after 60 s; the server is still shutting down.
    await sleep(5_000);
  }
  await primary.startServer();
  return stopped;
}

async function measure(name: string, make: () => Promise<Rig>): Promise<Record<string, number[]>> {
  const rig = await make();
  const result: Record<string, number[]> = {
    idle: [],
    load: [],
    convergeIdle: [],
    convergeLoad: [],
  };
  try {
    await converge(rig);
    for (let rep = 0; rep < REPS; rep++) {
      result.idle?.push(await restart(rig.primary));
      result.convergeIdle?.push(await converge(rig));
      // pgbench loses its connections at the restart and exits; what it committed must arrive.
      const load = pgbench(rig.primary, ['-c', '4', '-j', '2', '-T', '10']).catch(() => Number.NaN);
      await sleep(3_000);
      result.load?.push(await restart(rig.primary));
      await load;
      result.convergeLoad?.push(await converge(rig));
      console.error(`${name}: rep ${rep + 1} done`);
    }
  } finally {
    await rig.stop();
  }
  return result;
}

const median = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const ms = (x: number) => (Number.isNaN(x) ? 'gave up (60 s)' : `${Math.round(x)}`);

const native = await measure('native', nativeRig);
const lockstepRun = await measure('lockstep', lockstepRig);
console.log('| fast restart of the primary | native | lockstep |');
console.log('|---|---|---|');
for (const [key, label] of [
  ['idle', 'pg_ctl stop -m fast, idle, ms'],
  ['convergeIdle', 'then replicas identical after start, ms'],
  ['load', 'pg_ctl stop -m fast under pgbench -c 4, ms'],
  ['convergeLoad', 'then replicas identical after start, ms'],
] as const) {
  console.log(
    `| ${label} | ${ms(median(native[key] ?? []))} | ${ms(median(lockstepRun[key] ?? []))} |`,
  );
}
console.log(
  `\nevery run (ms), native | lockstep:\n${Object.keys(native)
    .map((k) => `${k}: ${native[k]?.map(ms).join(', ')} | ${lockstepRun[k]?.map(ms).join(', ')}`)
    .join('\n')}`,
);
