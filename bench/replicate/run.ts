/**
 * bench:replicate — lockstep and PostgreSQL's native logical replication side
 * by side, in one run on this machine, 1 primary → 2 replicas, same cluster
 * settings (those of shared/tools/native-baseline.sh), fresh clusters for each
 * system, data equality checked after every stage:
 *
 *   (a) initial sync of pgbench -i -s $BENCH_SCALE (rows/s per replica)
 *   (b) pgbench -c 4 -j 2 -T $BENCH_PGBENCH_SECONDS while replicating: primary
 *       TPS, and catch-up (pgbench end → marker visible on both)
 *   (c) backlog drain: replication stopped during $BENCH_BACKLOG_SECONDS of
 *       pgbench, then time to apply it all (apply txn/s). The first drain
 *       after (a) is reported on its own row (a freshly copied replica),
 *       then the median of $BENCH_REPS later drains. Stopped as an
 *       operator pauses each system: native's ALTER SUBSCRIPTION DISABLE /
 *       ENABLE, lockstep's pause / resume (the calls its CLI commands make).
 *       lockstep is also measured stopped by ending the sidecar and started
 *       anew (process start-up included), a row without a target
 *   (d) one $BENCH_BULK_ROWS-row transaction: commit → visible on both, and
 *       the sidecar's peak RSS
 *
 * Both systems' clusters are up at once and take turns stage by stage, each
 * stage run BENCH_REPS times (default 3, as shared/tools/native-baseline.sh
 * does) and reported as the median, with every run listed: single runs on this
 * machine drift by 20-30% within minutes, and running one system after the
 * other let that drift decide (b) and (c).
 *
 * BENCH_STAGES picks stages (default "a b c d"; (a) always runs, it sets replication up).
 * Not part of `npm test`; needs pgbench and pg_dump (system PostgreSQL).
 */
import { readFileSync } from 'node:fs';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { setReplicationPaused } from '../../plugin/attach/pause-replication.js';
import type { LockstepConfig } from '../../plugin/config/config-schema.js';
import { loadConfig } from '../../plugin/config/load-config.js';
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
import { printReport } from './report.js';

// The sidecar runs as users run it: the built CLI (the npm script builds it first).
useBuiltCli();

const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 30);
const BACKLOG_SECONDS = Number(process.env.BENCH_BACKLOG_SECONDS ?? 15);
const BULK_ROWS = Number(process.env.BENCH_BULK_ROWS ?? 1_000_000);
const STAGES = new Set((process.env.BENCH_STAGES ?? 'a b c d').split(/[ ,]+/));
const REPS = Number(process.env.BENCH_REPS ?? 3);
const LAUNCHER_WAIT_MS = 5_500; // native's apply launcher starts a worker at most every wal_retrieve_retry_interval
/** The bench attaches with this version: its control schema never predates pause. */
const noUpgrade = async () => undefined;
const now = () => performance.now();

interface System {
  readonly name: string;
  /** (a): start replicating with an initial copy; resolves when both replicas have everything. */
  sync(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** Stops applying (the primary keeps WAL). */
  pause(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** Starts applying again. */
  resume(primary: PostgresCluster, replicas: PostgresCluster[]): Promise<void>;
  /** lockstep only: stops by ending the replication process, and starts it anew. */
  restart?: { stop(): Promise<void>; start(): Promise<void> };
  /** Peak RSS of the replication process, MB (lockstep only). */
  peakRssMB(): number | null;
  stop(): Promise<void>;
}

function nativeSystem(): System {
  const conn = (p: PostgresCluster) =>
    `host=${p.host} port=${p.port} dbname=postgres user=postgres`;
  return {
    name: 'native',
    async sync(primary, replicas) {
      await primary.query('CREATE PUBLICATION pub FOR ALL TABLES');
      await Promise.all(
        replicas.map((r, i) =>
          r.query(
            `CREATE SUBSCRIPTION sub${i} CONNECTION '${conn(primary)}' PUBLICATION pub WITH (copy_data = true)`,
          ),
        ),
      );
      await waitOnAll(
        replicas,
        `EXISTS (SELECT 1 FROM pg_subscription_rel) AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel WHERE srsubstate NOT IN ('s','r'))`,
      );
    },
    async pause(primary, replicas) {
      await Promise.all(replicas.map((r, i) => r.query(`ALTER SUBSCRIPTION sub${i} DISABLE`)));
      for (;;) {
        const rows = await primary.query(
          `SELECT 1 FROM pg_stat_replication WHERE application_name LIKE 'sub%'`,
        );
        if (rows.length === 0) break;
        await sleep(50);
      }
    },
    async resume(_primary, replicas) {
      await Promise.all(replicas.map((r, i) => r.query(`ALTER SUBSCRIPTION sub${i} ENABLE`)));
    },
    peakRssMB: () => null,
    stop: async () => undefined,
  };
}

function lockstepSystem(): System {
  let config: ReturnType<typeof writeConfig> | null = null;
  /** The configuration as lockstep reads it, loaded once (not inside the timed resume). */
  let loaded: LockstepConfig | null = null;
  let sidecar: LockstepProcess | null = null;
  let peak = 0;
  const sample = () => {
    const pid = sidecar?.child.pid;
    if (!pid) return;
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
    } catch {
      // exited
    }
  };
  const configFile = () => (config as { file: string }).file;
  const start = () => {
    sidecar = new LockstepProcess(['run', '--config', configFile()], {
      LOCKSTEP_LOG_LEVEL: 'warn',
    });
  };
  const stopSidecar = async () => {
    sample();
    sidecar?.kill('SIGTERM');
    await sidecar?.exited;
    sidecar = null;
  };
  return {
    name: 'lockstep',
    async sync(primary, replicas) {
      config = writeConfig(primary, replicas);
      const attached = await lockstep(['attach', '--config', config.file]);
      if (attached.code !== 0) throw new Error(`attach failed:\n${attached.output}`);
      loaded = loadConfig(config.file);
      start();
    },
    async pause() {
      await setReplicationPaused(postgresCluster(), loaded as LockstepConfig, true, noUpgrade);
    },
    async resume() {
      await setReplicationPaused(postgresCluster(), loaded as LockstepConfig, false, noUpgrade);
    },
    restart: {
      stop: stopSidecar,
      async start() {
        start();
      },
    },
    peakRssMB: () => {
      sample();
      return Math.round(peak);
    },
    async stop() {
      await stopSidecar();
      config?.remove();
    },
  };
}

/** One system on its own clusters, its stages run one at a time (see the loop below). */
interface Rig {
  readonly system: System;
  readonly primary: PostgresCluster;
  readonly replicas: PostgresCluster[];
  /** Every run of every figure, by figure name. */
  readonly runs: Record<string, number[]>;
  /** Data equality after every stage run (0 on any mismatch). */
  identical: boolean;
}

function record(rig: Rig, figure: string, value: number): void {
  const runs = rig.runs[figure] ?? [];
  runs.push(value);
  rig.runs[figure] = runs;
}

async function check(rig: Rig, stage: string): Promise<void> {
  const same = await identical(rig.primary, rig.replicas);
  rig.identical &&= same;
  console.error(`  ${rig.system.name} ${stage}: ${same ? 'data identical' : 'DATA MISMATCH'}`);
}

/** Fresh clusters with pgbench's tables, then (a): replication set up with an initial copy. */
async function setUp(system: System): Promise<Rig> {
  const [primary, ...replicas] = await Promise.all([
    benchProvider.start({
      role: 'primary',
      name: `${system.name}-primary`,
      settings: BASELINE_SETTINGS,
    }),
    benchProvider.start({
      role: 'replica',
      name: `${system.name}-r1`,
      settings: { ...BASELINE_SETTINGS, max_prepared_transactions: 20 },
    }),
    benchProvider.start({
      role: 'replica',
      name: `${system.name}-r2`,
      settings: { ...BASELINE_SETTINGS, max_prepared_transactions: 20 },
    }),
  ]);
  const rig: Rig = {
    system,
    primary: primary as PostgresCluster,
    replicas,
    runs: {},
    identical: true,
  };
  const p = rig.primary;
  console.error(`${system.name}: pgbench -i -s ${SCALE}`);
  await pgbench(p, ['-i', '-q', '-s', String(SCALE)]);
  await p.query(`ALTER TABLE pgbench_history REPLICA IDENTITY FULL;
                 CREATE TABLE bulk (id bigint PRIMARY KEY, payload text);
                 CREATE TABLE nb_marker (id bigserial PRIMARY KEY, t timestamptz DEFAULT clock_timestamp());`);
  await p.query('VACUUM ANALYZE');
  await copySchema(p, replicas);
  const rows = Number(
    (
      await p.query<{
        n: string;
      }>(`SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches)
    + (SELECT count(*) FROM pgbench_tellers) AS n`)
    )[0]?.n,
  );
  await Promise.all([p, ...replicas].map((c) => c.query('CHECKPOINT')));
  await sleep(system.name === 'native' ? LAUNCHER_WAIT_MS : 0);

  // (a) initial sync
  const t0 = now();
  await system.sync(p, replicas);
  record(rig, 'a_rows_per_s', rows / ((now() - t0) / 1000));
  await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`);
  await check(rig, 'a');
  return rig;
}

/** (b) pgbench while replicating: primary TPS, and catch-up after it ends. */
async function steadyState(rig: Rig): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (b) pgbench -c 4 -j 2 -T ${PGBENCH_SECONDS} while replicating`);
  await p.query('VACUUM pgbench_branches, pgbench_tellers');
  record(
    rig,
    'b_primary_tps',
    await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(PGBENCH_SECONDS)]),
  );
  const end = now();
  const caught = await waitOnAll(
    replicas,
    `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`,
  );
  record(rig, 'b_catchup_ms', caught - end);
  await check(rig, 'b');
}

/** (c) a backlog built while replication is paused, then the rate it is applied at. */
async function backlog(rig: Rig): Promise<void> {
  const { system, primary: p, replicas } = rig;
  await drainBacklog(
    rig,
    'c_apply_tps',
    () => system.pause(p, replicas),
    () => system.resume(p, replicas),
  );
}

/** (c) once, right after (a): the first backlog a freshly copied replica applies. */
async function firstBacklog(rig: Rig): Promise<void> {
  const { system, primary: p, replicas } = rig;
  await drainBacklog(
    rig,
    'c_first_apply_tps',
    () => system.pause(p, replicas),
    () => system.resume(p, replicas),
  );
}

/** (c), lockstep stopped by ending the sidecar instead: its process start-up counts in the drain. */
async function backlogAfterRestart(rig: Rig): Promise<void> {
  const { restart } = rig.system;
  if (restart) await drainBacklog(rig, 'c_restart_apply_tps', restart.stop, restart.start);
}

async function drainBacklog(
  rig: Rig,
  figure: string,
  pause: () => Promise<void>,
  resume: () => Promise<void>,
): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (${figure}) backlog of ${BACKLOG_SECONDS} s of pgbench`);
  await pause();
  const h0 = await historyCount(p);
  await pgbench(p, ['-n', '-c', '4', '-j', '2', '-T', String(BACKLOG_SECONDS)]);
  const txns = (await historyCount(p)) - h0;
  const m = await mark(p);
  if (system.name === 'native') await sleep(LAUNCHER_WAIT_MS);
  const t0 = now();
  await resume();
  const drained = await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${m})`);
  record(rig, figure, txns / ((drained - t0) / 1000));
  await check(rig, figure);
}

/** (d) one large transaction (run `run` adds ids past the earlier runs'), commit to visible on both. */
async function largeTransaction(rig: Rig, run: number): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (d) one ${BULK_ROWS}-row transaction`);
  await Promise.all([p, ...replicas].map((c) => c.query('CHECKPOINT')));
  const first = run * BULK_ROWS;
  await p.query(
    `INSERT INTO bulk SELECT ${first} + g, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${BULK_ROWS}) g`,
  );
  const committed = now();
  const visible = await waitOnAll(
    replicas,
    `EXISTS (SELECT 1 FROM bulk WHERE id = ${first + BULK_ROWS})`,
  );
  record(rig, 'd_commit_to_both_s', (visible - committed) / 1000);
  await check(rig, 'd');
}

console.error(
  `bench:replicate on PostgreSQL ${benchProvider.binaries.major} (${benchProvider.binaries.bin}), ${REPS} run(s) per stage`,
);
const rigs: Rig[] = [];
try {
  rigs.push(await setUp(nativeSystem()));
  rigs.push(await setUp(lockstepSystem()));
  // Stage by stage, the systems take turns (the first to go alternates), so a
  // machine that slows down or speeds up during the run weighs on both alike.
  const stages: [string, (rig: Rig, run: number) => Promise<void>, number][] = [
    // Before anything else has warmed the replicas: a user's first drain after attach.
    ['c', firstBacklog, 1],
    ['b', steadyState, REPS],
    ['c', backlog, REPS],
    ['c', backlogAfterRestart, REPS],
    ['d', largeTransaction, REPS],
  ];
  for (const [stage, runStage, reps] of stages) {
    if (!STAGES.has(stage)) continue;
    for (let run = 0; run < reps; run++) {
      const order = run % 2 === 0 ? rigs : [...rigs].reverse();
      for (const rig of order) await runStage(rig, run);
    }
  }
  for (const rig of rigs) {
    const rss = rig.system.peakRssMB();
    if (rss !== null) record(rig, 'peak_rss_mb', rss);
  }
} finally {
  for (const rig of rigs) {
    await rig.system.stop();
    await Promise.all([rig.primary, ...rig.replicas].map((c) => c.destroy()));
  }
}
printReport(rigs as [Rig, Rig], { scale: SCALE, reps: REPS, major: benchProvider.binaries.major });
