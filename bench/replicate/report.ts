/** The tables bench:replicate prints: one per stage, every system a column, every run, the equality check. */

/** What the report reads of one system's rig. */
export interface ReportedRig {
  readonly system: { readonly name: string };
  readonly runs: Record<string, number[]>;
  readonly identical: boolean;
  readonly failed?: string;
}

/** One figure: its label, key in the rigs' runs, and the issue's target for lockstep. */
interface Figure {
  readonly label: string;
  readonly key: string;
  readonly target: string;
  /** A system's figure this row compares to, when not its own (lockstep restarted vs. paused). */
  readonly othersKey?: string;
}

const STAGES: ReadonlyArray<[string, Figure[]]> = [
  [
    '(a) initial sync end to end: command → every row on both replicas',
    [
      {
        label: 'rows/s per replica',
        key: 'a_rows_per_s',
        target: '>= 1.5x native, > 1x pglogical, > 1x pgcopydb',
      },
      { label: 'seconds', key: 'a_seconds', target: '-' },
    ],
  ],
  [
    '(b) pgbench while replicating',
    [
      { label: 'primary TPS', key: 'b_primary_tps', target: '>= 1.0x' },
      { label: 'catch-up after pgbench ends, ms', key: 'b_catchup_ms', target: '<= 100 ms' },
    ],
  ],
  [
    '(c) backlog drain, txn/s per replica',
    [
      {
        label: 'first drain after attach',
        key: 'c_first_apply_tps',
        target: '>= 1.5x native and pglogical',
      },
      { label: 'later drains (median)', key: 'c_apply_tps', target: '>= 2.0x native' },
      {
        label: 'lockstep restarted instead of paused',
        key: 'c_restart_apply_tps',
        othersKey: 'c_apply_tps',
        target: '-',
      },
    ],
  ],
  [
    '(d) one large transaction',
    [
      { label: 'commit -> both, s', key: 'd_commit_to_both_s', target: '<= 1.0x' },
      { label: 'sidecar peak RSS, MB', key: 'peak_rss_mb', target: '<= 256 MB' },
    ],
  ],
];

const ORDER = ['native', 'lockstep', 'pglogical', 'pgcopydb'];
const OURS = 'lockstep';

export const median = (values: readonly number[] | undefined): number | undefined => {
  if (!values?.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? sorted[mid]
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

const fmt = (n: number | undefined) =>
  n === undefined ? '-' : n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(2);

/** The runs of `figure` for `rig` (lockstep's own key, others' comparison key). */
const runsOf = (rig: ReportedRig, figure: Figure) =>
  rig.runs[rig.system.name === OURS ? figure.key : (figure.othersKey ?? figure.key)];

/** Prints one stage's table, then every run; nothing when no system measured it. */
function printStage(title: string, figures: Figure[], rigs: ReportedRig[]): void {
  const shown = rigs.filter((rig) => figures.some((f) => runsOf(rig, f)?.length));
  if (shown.length === 0) return;
  const ours = shown.find((rig) => rig.system.name === OURS);
  const others = shown.filter((rig) => rig !== ours);
  const ratioHeads = ours ? others.map((rig) => `${OURS}/${rig.system.name}`) : [];
  console.log(`\n${title}`);
  console.log(
    `| figure | ${[...shown.map((r) => r.system.name), ...ratioHeads, 'target'].join(' | ')} |`,
  );
  console.log(`|---|${[...shown, ...ratioHeads].map(() => '---|').join('')}---|`);
  for (const figure of figures) {
    const medians = shown.map((rig) => median(runsOf(rig, figure)));
    const mine = ours ? median(runsOf(ours, figure)) : undefined;
    const ratios = ours
      ? others.map((rig) => {
          const theirs = median(runsOf(rig, figure));
          return mine !== undefined && theirs ? `${(mine / theirs).toFixed(2)}x` : '-';
        })
      : [];
    console.log(
      `| ${figure.label} | ${[...medians.map(fmt), ...ratios, figure.target].join(' | ')} |`,
    );
  }
  console.log(`Every run (medians above), ${shown.map((r) => r.system.name).join(' | ')}:`);
  for (const figure of figures) {
    const each = shown.map((rig) => (runsOf(rig, figure) ?? []).map(fmt).join(', ') || '-');
    console.log(`  ${figure.label}: ${each.join(' | ')}`);
  }
}

/** Prints every stage's comparison table, systems in a fixed order. */
export function printReport(
  rigs: ReportedRig[],
  run: { major: number; scale: number; wideRows: number; reps: number },
): void {
  const sorted = [...rigs].sort(
    (a, b) => ORDER.indexOf(a.system.name) - ORDER.indexOf(b.system.name),
  );
  console.log(
    `\nbench:replicate — PostgreSQL ${run.major}, 1 primary -> 2 replicas, pgbench scale ${run.scale} + ${run.wideRows} wide rows, ${run.reps} run(s) per stage ((a) and the first drain: one)`,
  );
  for (const [title, figures] of STAGES) printStage(title, figures, sorted);
  for (const rig of sorted.filter((r) => r.failed))
    console.log(`\n!! ${rig.system.name} failed and was dropped: ${rig.failed?.split('\n')[0]}`);
  const mismatched = sorted.filter((rig) => !rig.identical).map((rig) => rig.system.name);
  console.log(
    mismatched.length === 0
      ? `\ndata identical on every replica after every stage (${sorted.map((r) => r.system.name).join(', ')})`
      : `\n!! data mismatch: ${mismatched.join(', ')}`,
  );
}
