import { availableParallelism } from 'node:os';
import { CPU_PARTS, type CpuPart } from './cpu-meter.js';
import { percentile } from './lag.js';

/** One run's figures: N replicas over one transport. */
export interface FanoutResult {
  readonly n: number;
  readonly transport: string;
  readonly primaryTps: number;
  readonly transactions: number;
  /** CPU seconds per 1,000 primary transactions while pgbench ran. */
  readonly cpuPer1k: Readonly<Record<CpuPart, number>>;
  /** Cores the machine kept busy on average while pgbench ran. */
  readonly coresBusy: number;
  /** Every replica's lag samples, ms, in r1 … rN order. */
  readonly lags: number[][];
  /** pgbench's end → a marker on every replica, ms. */
  readonly catchUpMs: number;
  /** WAL the slot retains after the steady phase, every replica running, MB. */
  readonly baselineMB: number;
  readonly retainedMB: number;
  readonly writtenMB: number;
  /** r1 brought back → every replica caught up, ms; null when not within the bench's wait. */
  readonly rejoinMs: number | null;
  readonly identical: boolean;
}

const fmt = (n: number) =>
  Number.isNaN(n) ? '-' : n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(2);

const p = (lags: number[][], q: number) => lags.map((l) => percentile(l, q));

function row(r: FanoutResult): string {
  const p50 = p(r.lags, 0.5);
  const p99 = p(r.lags, 0.99);
  const within = p99.filter((ms) => ms <= 1000).length;
  const bus = r.transport === 'bus';
  return `| ${r.n} | ${r.transport} | ${fmt(r.primaryTps)} | ${fmt(r.cpuPer1k.sidecar)} | ${
    bus ? fmt(r.cpuPer1k.agents) : '-'
  } | ${bus ? fmt(r.cpuPer1k.nats) : '-'} | ${fmt(percentile(p50, 0.5))} | ${fmt(
    percentile(p99, 0.5),
  )} / ${fmt(Math.max(...p99))} | ${within}/${r.n} | ${fmt(r.catchUpMs)} | ${fmt(
    r.baselineMB,
  )} | ${fmt(r.retainedMB)} | ${fmt(r.writtenMB)} | ${
    r.rejoinMs === null ? 'NOT in 120 s' : fmt(r.rejoinMs)
  } | ${r.identical ? 'yes' : 'NO'} |`;
}

/** The goal lines of issue 20, each beside the figures that speak to it. */
function goals(results: readonly FanoutResult[]): void {
  const bus = results.filter((r) => r.transport === 'bus');
  const inproc = results.filter((r) => r.transport === 'inprocess');
  const series = (rs: readonly FanoutResult[]) =>
    rs.map((r) => `N=${r.n}: ${fmt(r.cpuPer1k.sidecar)}`).join(', ') || '-';
  console.log('\nGoals (issue 20), beside the numbers:');
  console.log(
    `- publisher CPU flat in N on the bus — CPU s/1k txn, bus publisher: ${series(bus)};`,
  );
  console.log(`  in-process sidecar: ${series(inproc)}`);
  const largest = Math.max(...results.map((r) => r.n));
  for (const r of results.filter((x) => x.n === largest)) {
    const p99 = p(r.lags, 0.99);
    console.log(
      `- with 64 replicas every one within 1 s — N=${largest} ${r.transport}: ${
        p99.filter((ms) => ms <= 1000).length
      }/${r.n} replicas with lag p99 <= 1 s, worst p99 ${fmt(Math.max(...p99))} ms`,
    );
  }
  const wal = (rs: readonly FanoutResult[]) =>
    rs
      .map(
        (r) =>
          `N=${r.n}: ${fmt(r.retainedMB)} (all running: ${fmt(r.baselineMB)}; written: ${fmt(r.writtenMB)})`,
      )
      .join(', ');
  console.log('- retained WAL independent of a stopped replica — MB retained with r1 stopped:');
  console.log(`  bus: ${wal(bus) || '-'}; in-process: ${wal(inproc) || '-'}`);
}

const CORES = availableParallelism();
const PROJECTED_N = 64;
/** The processes' parts: every part but the machine's busy time. */
const PARTS = CPU_PARTS.filter((k) => k !== 'machine');
const sum = (c: FanoutResult['cpuPer1k'], parts: readonly CpuPart[]) =>
  parts.reduce((s, k) => s + c[k], 0);
/** Bus: what one more replica costs per 1k txn (its agent, its database, NATS counted as per replica). */
const perReplica = (r: FanoutResult) => sum(r.cpuPer1k, ['agents', 'replicaPg', 'nats']) / r.n;
/** The primary TPS at which `per1k` CPU seconds per 1k transactions fill every core. */
const tpsFilling = (per1k: number) => (CORES * 1000) / per1k;

/**
 * Where the CPU goes, per 1k primary transactions, and the primary TPS the
 * machine's cores carry: at this N, and (bus) at 64 replicas, the parts that
 * do not grow with N (publisher, primary, pgbench) plus 64 times one replica's.
 */
function cpuTable(results: readonly FanoutResult[]): void {
  console.log(`\nCPU s per 1k primary transactions (${CORES} cores):`);
  console.log(
    `| N | transport | primary TPS | sidecar/publisher | agents | NATS | replica clusters | primary cluster | pgbench | sum | machine busy | cores busy | one replica (bus: agent + its database + NATS / N) | TPS ${CORES} cores carry at this N | TPS ${CORES} cores carry at N=${PROJECTED_N} (bus) |`,
  );
  console.log(`|${'---|'.repeat(15)}`);
  for (const r of results) {
    const c = r.cpuPer1k;
    const bus = r.transport === 'bus';
    const fixed = sum(c, ['sidecar', 'primaryPg', 'pgbench']);
    const cells = [
      r.n,
      r.transport,
      fmt(r.primaryTps),
      ...PARTS.map((k) => fmt(c[k])),
      fmt(sum(c, PARTS)),
      fmt(c.machine),
      fmt(r.coresBusy),
      bus ? fmt(perReplica(r)) : '-',
      fmt(tpsFilling(sum(c, PARTS))),
      bus ? fmt(tpsFilling(fixed + PROJECTED_N * perReplica(r))) : '-',
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

/** Prints the table (one row per N and transport), every replica's lag, and the goals. */
export function printReport(results: readonly FanoutResult[], header: string): void {
  console.log(`\n${header}`);
  console.log(
    '| N | transport | primary TPS | sidecar/publisher CPU s per 1k txn | agents CPU s per 1k txn | NATS CPU s per 1k txn | lag p50 ms (median replica) | lag p99 ms (median / worst replica) | replicas p99 <= 1 s | catch-up after pgbench ms | retained WAL MB, all running | retained WAL MB, r1 stopped | WAL written since r1 stopped MB | r1 back: catch-up ms | data identical |',
  );
  console.log(`|${'---|'.repeat(15)}`);
  for (const r of results) console.log(row(r));
  cpuTable(results);
  console.log('\nEvery replica, lag p50/p99 ms:');
  for (const r of results) {
    const [p50, p99] = [p(r.lags, 0.5), p(r.lags, 0.99)];
    const each = p50.map((v, i) => `r${i + 1} ${fmt(v)}/${fmt(p99[i] as number)}`);
    console.log(`  N=${r.n} ${r.transport}: ${each.join(', ')}`);
  }
  goals(results);
}
