/**
 * bench:fanout — 1 primary → N replicas (issue 20), for each N of
 * $BENCH_FANOUT_N (default "1 4 16 64") over both transports, each on fresh
 * nodes: in process (one `lockstep run` applying to every replica) and the
 * bus (`lockstep run` publishing to a 3-node JetStream cluster on loopback,
 * R = $BENCH_NATS_REPLICAS, and one `lockstep agent` per replica). Replicas
 * are databases r1 … rN, up to $BENCH_DATABASES_PER_CLUSTER (16) per local
 * cluster. After `lockstep attach` (not measured):
 *
 *   steady: pgbench tpcb-like -c $BENCH_CLIENTS for $BENCH_SECONDS (30) on
 *           the primary, at $BENCH_RATE transactions per second (pgbench -R)
 *           or, unset, as fast as it goes: primary TPS; CPU seconds per 1,000
 *           primary transactions (utime + stime from /proc/<pid>/stat) of the
 *           sidecar (the publisher on the bus), of the agents together, of the
 *           NATS servers together, of the replica clusters' and the primary's
 *           processes (postmaster, its children and the ones it reaped), of
 *           pgbench, and the machine's busy time (/proc/stat); from them the
 *           primary TPS the cores carry (cpu-meter.ts, report.ts); per-replica
 *           lag p50/p99 (lag.ts: each
 *           replica's applied LSN against a 25 ms timeline of the primary's
 *           pg_current_wal_lsn(), i.e. how long its oldest missing commit has
 *           waited); catch-up: pgbench's end → a marker row on every
 *           replica; then CHECKPOINT and the WAL the slot retains with every
 *           replica running (the baseline of the next phase).
 *   stopped: replica r1 stopped (bus: its agent ended; in process: its
 *           database made unreachable, ALLOW_CONNECTIONS false) during
 *           $BENCH_STOPPED_SECONDS of pgbench; once the other replicas (and on
 *           the bus the slot's confirmed point) caught up with its end,
 *           CHECKPOINT and the WAL the primary's slot retains
 *           (pg_current_wal_lsn() - restart_lsn), beside
 *           the WAL written in that phase; then r1 is brought back and the
 *           time until every replica has caught up is reported (or that it
 *           did not within 2 minutes).
 *
 * Data equality (every replica equals the primary) is checked at the end of
 * each run. Prints numbers and the issue's goals beside them; decides nothing.
 * Other knobs: BENCH_SCALE (default 4), BENCH_TRANSPORTS ("inprocess bus"),
 * BENCH_RATE (unset: unthrottled); the rate is printed in the report's header.
 * Needs pgbench, pg_dump and nats-server.
 */

import { sleep } from '../../plugin/support/sleep.js';
import { useBuiltCli } from '../../test/support/lockstep-process.js';
import {
  benchProvider,
  historyCount,
  identical,
  mark,
  pgbench,
  waitOnAll,
} from '../support/bench-cluster.js';
import { CPU_PARTS, type CpuPart, cpuMeter } from './cpu-meter.js';
import { CLIENTS, FANOUT_N, RATE, SCALE, SECONDS, STOPPED_SECONDS, TRANSPORTS } from './knobs.js';
import { lsnBytes, sampleLag } from './lag.js';
import { type FanoutResult, printReport } from './report.js';
import { type Rig, setUpRig, type Transport, tearDown } from './rig.js';
import { type Running, startTransport } from './transport.js';

// The sidecar and agents run as users run them: the built CLI (the npm script builds it first).
useBuiltCli();

const MB = 1024 * 1024;
const REJOIN_TIMEOUT_MS = 120_000;
const throttle = RATE === null ? [] : ['-R', String(RATE)];
const load = (rig: Rig, seconds: number) =>
  pgbench(rig.primary, [
    '-n',
    '-c',
    String(CLIENTS),
    '-j',
    '2',
    '-T',
    String(seconds),
    ...throttle,
  ]);
const pgbenchLoad = `pgbench -s ${SCALE} -c ${CLIENTS} ${RATE === null ? 'unthrottled' : `-R ${RATE}`}`;

/** Waits until every replica has everything the primary committed until now. */
async function caughtUp(rig: Rig, timeoutMs?: number): Promise<void> {
  const id = await mark(rig.primary);
  await waitOnAll(rig.replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${id})`, timeoutMs);
}

/** How long r1 took to catch up once brought back, ms; null when it did not within 2 minutes. */
async function rejoined(rig: Rig, running: Running): Promise<number | null> {
  const t0 = performance.now();
  await running.startOne();
  try {
    await caughtUp(rig, REJOIN_TIMEOUT_MS);
    return performance.now() - t0;
  } catch (error) {
    console.error(`  r1 not caught up: ${(error as Error).message}`);
    return null;
  }
}

async function walLsn(rig: Rig): Promise<bigint> {
  const [row] = await rig.primary.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
  return lsnBytes(row?.l as string);
}

/** WAL the primary's slot retains after a CHECKPOINT, MB. */
async function retainedMB(rig: Rig): Promise<number> {
  // A logical slot's restart_lsn moves only to a running-transactions record the consumer
  // confirmed past: CHECKPOINT logs one, a commit after it gives the sidecar something to
  // confirm, then a few seconds for its confirmation (PostgreSQL 15 has no pg_log_standby_snapshot).
  await rig.primary.query('CHECKPOINT');
  await mark(rig.primary);
  await sleep(3_000);
  await rig.primary.query('CHECKPOINT');
  const [row] = await rig.primary.query<{ b: string; c: string }>(
    `SELECT (pg_current_wal_lsn() - restart_lsn)::text AS b,
            (pg_current_wal_lsn() - confirmed_flush_lsn)::text AS c
       FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
  );
  // The confirmed point beside restart_lsn: tells a slot not confirmed from one not yet advanced.
  console.error(`  slot confirmed ${(Number(row?.c) / MB).toFixed(2)} MB behind the WAL end`);
  return Number(row?.b) / MB;
}

/**
 * After the stopped phase's pgbench: the replicas still running have caught
 * up and, on the bus, the slot is confirmed past that point (at most 30 s),
 * so what the slot retains is r1's doing, not a publisher still behind. In
 * process the slot cannot pass r1's position: not waited for. On the bus the
 * slot trails JetStream's ack by `bus.serverSyncInterval` (2 min): the wait
 * runs out and the figure includes the WAL of that interval, as users get it.
 */
async function settled(rig: Rig): Promise<void> {
  const id = await mark(rig.primary);
  const end = await walLsn(rig);
  const others = rig.replicas.slice(1);
  if (others.length > 0)
    await waitOnAll(others, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${id})`, REJOIN_TIMEOUT_MS);
  for (const deadline = Date.now() + 30_000; rig.nats && Date.now() < deadline; ) {
    const [slot] = await rig.primary.query<{ l: string }>(
      `SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
    );
    if (slot && lsnBytes(slot.l) >= end) return;
    await sleep(100);
  }
}

/** The stopped phase: WAL the slot retains with r1 stopped, and WAL written meanwhile, MB. */
async function stoppedPhase(rig: Rig, running: Running) {
  await running.stopOne();
  const before = await walLsn(rig);
  await load(rig, STOPPED_SECONDS);
  await settled(rig);
  const retained = await retainedMB(rig);
  const writtenMB = Number((await walLsn(rig)) - before) / MB;
  return { retainedMB: retained, writtenMB, rejoinMs: await rejoined(rig, running) };
}

async function measure(n: number, transport: Transport): Promise<FanoutResult> {
  console.error(`N=${n} ${transport}: setting up (pgbench -i -s ${SCALE}, attach)`);
  const rig = await setUpRig(n, transport);
  const running = startTransport(rig);
  try {
    await caughtUp(rig);
    console.error(`N=${n} ${transport}: ${pgbenchLoad} -T ${SECONDS}`);
    await rig.primary.query('VACUUM pgbench_branches, pgbench_tellers');
    const cpu = await cpuMeter(rig, running);
    const [h0, cpu0] = [await historyCount(rig.primary), cpu()];
    const stopLag = await sampleLag(rig.primary, rig.replicas);
    const primaryTps = await load(rig, SECONDS);
    const lags = await stopLag();
    const [h1, cpu1] = [await historyCount(rig.primary), cpu()];
    const per1k = (k: CpuPart) => ((cpu1[k] - cpu0[k]) / (h1 - h0)) * 1000;
    const ended = performance.now();
    await caughtUp(rig);
    const catchUpMs = performance.now() - ended;
    const baselineMB = await retainedMB(rig);
    console.error(`N=${n} ${transport}: r1 stopped for ${STOPPED_SECONDS} s of pgbench`);
    const wal = await stoppedPhase(rig, running);
    const same = await identical(rig.primary, rig.replicas);
    console.error(`  N=${n} ${transport}: ${same ? 'data identical' : 'DATA MISMATCH'}`);
    return {
      n,
      transport,
      primaryTps,
      transactions: h1 - h0,
      cpuPer1k: Object.fromEntries(CPU_PARTS.map((k) => [k, per1k(k)])) as Record<CpuPart, number>,
      coresBusy: (cpu1.machine - cpu0.machine) / (cpu1.wallSeconds - cpu0.wallSeconds),
      lags,
      catchUpMs,
      baselineMB,
      ...wal,
      identical: same,
    };
  } finally {
    await running.stop();
    await tearDown(rig);
  }
}

console.error(
  `bench:fanout on PostgreSQL ${benchProvider.binaries.major}, N = ${FANOUT_N.join(' ')}, ${SECONDS} s of ${pgbenchLoad} each`,
);
const results: FanoutResult[] = [];
for (const n of FANOUT_N)
  for (const transport of TRANSPORTS as Transport[]) {
    try {
      results.push(await measure(n, transport));
    } catch (error) {
      console.error(`N=${n} ${transport}: failed: ${(error as Error).message}`);
    }
  }
printReport(
  results,
  `bench:fanout — PostgreSQL ${benchProvider.binaries.major}, 1 primary -> N replicas, ${pgbenchLoad} for ${SECONDS} s, r1 stopped for ${STOPPED_SECONDS} s`,
);
