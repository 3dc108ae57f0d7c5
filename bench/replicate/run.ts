/**
 * bench:replicate — lockstep beside PostgreSQL's native logical replication,
 * pglogical 2 and pgcopydb, in one run on this machine, 1 primary → 2
 * replicas, each system on fresh clusters with the same settings (those of
 * shared/tools/native-baseline.sh, plus pglogical's preloaded library on
 * its own), data equality checked after every stage:
 *
 *   (a) initial sync end to end, as a user times it from a shell: from the
 *       first command (CREATE PUBLICATION + SUBSCRIPTION, `lockstep attach`
 *       then `lockstep run`, pglogical's nodes + subscriptions, one `pgcopydb
 *       clone` per replica in parallel) until every row of every table is on
 *       both replicas and a streaming system applies new writes (lockstep's
 *       sidecar start-up and catch-up count). Same tables for all: pgbench -i
 *       -s $BENCH_SCALE, $BENCH_WIDE_ROWS rows of 15–60 kB TOAST values
 *       (`wide`), and the empty `bulk` and `nb_marker` (stages/initial-sync.ts
 *       says why native once looked 4–5× slower here than from a shell)
 *   (b) pgbench -c 4 -j 2 -T $BENCH_PGBENCH_SECONDS while replicating: primary
 *       TPS, and catch-up (pgbench end → marker visible on both)
 *   (c) backlog drain: replication stopped during $BENCH_BACKLOG_SECONDS of
 *       pgbench, then time to apply it all (apply txn/s). The first drain
 *       after (a) is reported on its own row (a freshly copied replica),
 *       then the median of $BENCH_REPS later drains. Stopped as an
 *       operator pauses each system: native's ALTER SUBSCRIPTION DISABLE /
 *       ENABLE, pglogical's alter_subscription_disable / _enable, lockstep's
 *       pause / resume (the calls its CLI commands make). lockstep is also
 *       measured stopped by ending the sidecar and started anew (process
 *       start-up included), a row without a target
 *   (d) one $BENCH_BULK_ROWS-row transaction: commit → visible on both, and
 *       the sidecar's peak RSS
 *
 * pgcopydb copies once: it is in (a) only. pglogical (Debian's
 * postgresql-15-pglogical) and pgcopydb (Debian's pgcopydb) are skipped with
 * a message when not installed. The streaming systems' clusters are up at
 * once and take turns stage by stage, each stage run BENCH_REPS times
 * (default 3, as shared/tools/native-baseline.sh does) and reported as the
 * median, with every run listed: single runs on this machine drift by 20-30%
 * within minutes, and running one system after the other let that drift
 * decide (b) and (c).
 *
 * Knobs: BENCH_SCALE (pgbench scale, default 10; 50 works: ≈ 5.3M rows, see
 * the README for time and memory), BENCH_WIDE_ROWS (default 2000, ≈ 75 MB),
 * BENCH_STAGES (default "a b c d"; (a) always runs, it sets replication up),
 * BENCH_SYSTEMS (default "native lockstep pglogical pgcopydb"), BENCH_REPS,
 * BENCH_PGBENCH_SECONDS, BENCH_BACKLOG_SECONDS, BENCH_BULK_ROWS.
 * BENCH_CPU_PROF=DIR writes a V8 CPU profile of every lockstep process there;
 * BENCH_NODE_FLAGS adds node flags to them (an A/B of V8 settings).
 * Not part of `npm test`; needs pgbench and pg_dump (system PostgreSQL).
 */
import { useBuiltCli } from '../../test/support/lockstep-process.js';
import { benchProvider } from '../support/bench-cluster.js';
import { NODE_FLAGS, REPS, SCALE, STAGES, SYSTEMS, WIDE_ROWS } from './knobs.js';
import { printReport } from './report.js';
import { type Rig, record, setUpRig, tearDown } from './rig.js';
import { backlog, backlogAfterRestart, firstBacklog } from './stages/backlog.js';
import { initialSync } from './stages/initial-sync.js';
import { largeTransaction } from './stages/large-transaction.js';
import { steadyState } from './stages/steady-state.js';
import type { System } from './system.js';
import { lockstepSystem } from './systems/lockstep.js';
import { nativeSystem } from './systems/native.js';
import { pgcopydbMissing, pgcopydbSystem } from './systems/pgcopydb.js';
import { pglogicalMissing, pglogicalSystem } from './systems/pglogical.js';

// The sidecar runs as users run it: the built CLI (the npm script builds it first).
useBuiltCli(undefined, NODE_FLAGS);

/** The systems to run, those whose software is missing left out with a message. */
function systems(): System[] {
  const all: [System, string | null][] = [
    [nativeSystem(), null],
    [lockstepSystem(), null],
    [pglogicalSystem(), pglogicalMissing()],
    [pgcopydbSystem(), pgcopydbMissing()],
  ];
  return all.flatMap(([system, missing]) => {
    if (!SYSTEMS.has(system.name)) return [];
    if (missing) console.error(missing);
    return missing ? [] : [system];
  });
}

/** Later stages, after (a); the streaming systems take turns in each. */
const STAGE_RUNS: [string, (rig: Rig, run: number) => Promise<void>, number][] = [
  // Before anything else has warmed the replicas: a user's first drain after attach.
  ['c', firstBacklog, 1],
  ['b', steadyState, REPS],
  ['c', backlog, REPS],
  ['c', backlogAfterRestart, REPS],
  ['d', largeTransaction, REPS],
];

const done: Rig[] = [];
const live: Rig[] = [];

/**
 * Runs one stage of one system; if it fails, says so and drops that system
 * (its clusters removed, its runs so far still reported) instead of the
 * whole bench: an external system's failure leaves the others' figures.
 */
async function survives(rig: Rig, stage: () => Promise<void>): Promise<boolean> {
  try {
    await stage();
    return true;
  } catch (error) {
    console.error(`${rig.system.name}: failed, column dropped: ${(error as Error).message}`);
    rig.failed = (error as Error).message;
    live.splice(live.indexOf(rig), 1);
    done.push(rig);
    await tearDown(rig);
    return false;
  }
}

console.error(
  `bench:replicate on PostgreSQL ${benchProvider.binaries.major} (${benchProvider.binaries.bin}), scale ${SCALE}, ${WIDE_ROWS} wide rows, ${REPS} run(s) per stage`,
);
const later = STAGE_RUNS.some(([stage]) => STAGES.has(stage));
try {
  for (const system of systems()) {
    const rig = await setUpRig(system);
    live.push(rig);
    if (!(await survives(rig, () => initialSync(rig)))) continue;
    if (!system.replicating || !later) {
      // Nothing more to measure on these clusters: free them (scale 50 fills memory and disk).
      live.splice(live.indexOf(rig), 1);
      done.push(rig);
      await tearDown(rig);
    }
  }
  // Stage by stage, the systems take turns (the order rotates), so a
  // machine that slows down or speeds up during the run weighs on all alike.
  for (const [stage, runStage, reps] of STAGE_RUNS) {
    if (!STAGES.has(stage)) continue;
    for (let run = 0; run < reps; run++) {
      const order = [...live.slice(run % live.length), ...live.slice(0, run % live.length)];
      for (const rig of order) await survives(rig, () => runStage(rig, run));
    }
  }
  for (const rig of live) {
    const rss = rig.system.peakRssMB();
    if (rss !== null) record(rig, 'peak_rss_mb', rss);
  }
} finally {
  for (const rig of live) {
    done.push(rig);
    await tearDown(rig);
  }
}
printReport(done, {
  major: benchProvider.binaries.major,
  scale: SCALE,
  wideRows: WIDE_ROWS,
  reps: REPS,
});
