/** The table bench:replicate prints: medians side by side, every run, and the equality check. */

type Figures = Record<string, number>;

/** What the report reads of one system's rig. */
export interface ReportedRig {
  readonly system: { readonly name: string };
  readonly runs: Record<string, number[]>;
  readonly identical: boolean;
}

const median = (values: number[] | undefined): number | undefined => {
  if (!values?.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? sorted[mid]
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

type Row = [string, string, number | undefined, number | undefined, string, string];

const figures = (rig: ReportedRig): Figures =>
  Object.fromEntries(Object.entries(rig.runs).map(([k, v]) => [k, median(v) as number]));

/** label, figure, native, lockstep, which is better, target. */
function reportRows(native: Figures, ours: Figures): Row[] {
  return [
    [
      '(a) initial sync, rows/s per replica',
      'a_rows_per_s',
      native.a_rows_per_s,
      ours.a_rows_per_s,
      'higher',
      '>= 1.0x',
    ],
    [
      '(b) primary TPS while replicating',
      'b_primary_tps',
      native.b_primary_tps,
      ours.b_primary_tps,
      'higher',
      '>= 1.0x',
    ],
    [
      '(b) catch-up after pgbench ends, ms',
      'b_catchup_ms',
      native.b_catchup_ms,
      ours.b_catchup_ms,
      'lower',
      '<= 100 ms',
    ],
    [
      '(c) first drain after attach, txn/s per replica',
      'c_first_apply_tps',
      native.c_first_apply_tps,
      ours.c_first_apply_tps,
      'higher',
      '>= 1.5x',
    ],
    [
      '(c) backlog apply, txn/s per replica',
      'c_apply_tps',
      native.c_apply_tps,
      ours.c_apply_tps,
      'higher',
      '>= 2.0x',
    ],
    [
      '(c) same, lockstep restarted instead of paused',
      'c_restart_apply_tps',
      native.c_apply_tps,
      ours.c_restart_apply_tps,
      'higher',
      '-',
    ],
    [
      '(d) 1M-row txn, commit -> both, s',
      'd_commit_to_both_s',
      native.d_commit_to_both_s,
      ours.d_commit_to_both_s,
      'lower',
      '<= 1.0x',
    ],
    ['(d) sidecar peak RSS, MB', 'peak_rss_mb', undefined, ours.peak_rss_mb, 'lower', '<= 256 MB'],
  ];
}

/** Prints the comparison table of native (first) and lockstep (second). */
export function printReport(
  [nativeRig, oursRig]: [ReportedRig, ReportedRig],
  run: { scale: number; reps: number; major: number | string },
): void {
  const rigs = [nativeRig, oursRig];
  const rowsOut = reportRows(figures(nativeRig), figures(oursRig));

  const fmt = (n: number | undefined) =>
    n === undefined ? '-' : n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(2);
  console.log(
    `\nbench:replicate — PostgreSQL ${run.major}, 1 primary -> 2 replicas, scale ${run.scale}`,
  );
  console.log('| stage | native | lockstep | lockstep/native | target |');
  console.log('|---|---|---|---|---|');
  for (const [label, , n, o, , target] of rowsOut) {
    const ratio = n !== undefined && o !== undefined ? `${(o / n).toFixed(2)}x` : '-';
    console.log(`| ${label} | ${fmt(n)} | ${fmt(o)} | ${ratio} | ${target} |`);
  }
  if (run.reps > 1) {
    console.log(
      `\nMedians of ${run.reps} runs per stage ((a) and the first drain: one). Every run, native | lockstep:`,
    );
    for (const [label, key] of rowsOut) {
      const each = (rig: ReportedRig) => (rig.runs[key] ?? []).map(fmt).join(', ') || '-';
      console.log(`  ${label}: ${each(nativeRig)} | ${each(oursRig)}`);
    }
  }
  console.log(
    rigs.every((rig) => rig.identical)
      ? 'data identical on every replica after every stage (both systems)'
      : `!! data mismatch: ${rigs
          .filter((rig) => !rig.identical)
          .map((rig) => rig.system.name)
          .join(', ')}`,
  );
}
