import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';
import { LockstepProcess } from './lockstep-process.js';
import { BANK_TOTAL, bankTotal } from './nemesis-workloads.js';

/** One lockstep process of the nemesis (sidecar, publisher or agent): may be killed (and started again), or paused with SIGSTOP. */
export class ProcessSlot {
  process: LockstepProcess | null = null;
  paused = false;
  /** Earlier processes of this slot: read when output is, so what one printed after its kill still counts. */
  private readonly earlier: LockstepProcess[] = [];

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  start(): void {
    if (this.process) this.earlier.push(this.process);
    this.process = new LockstepProcess([...this.args], this.env);
    this.paused = false;
  }

  signal(signal: NodeJS.Signals): void {
    this.process?.kill(signal);
    if (signal === 'SIGSTOP') this.paused = true;
    if (signal === 'SIGCONT') this.paused = false;
  }

  /** Everything every process of this slot printed. */
  get output(): string {
    return [...this.earlier, ...(this.process ? [this.process] : [])].map((p) => p.output).join('');
  }

  /** Ends it cleanly; its exit code. */
  async stop(): Promise<number | null> {
    if (this.paused) this.signal('SIGCONT');
    this.process?.kill('SIGTERM');
    return (await this.process?.closed) ?? null;
  }
}

/** One of the in-process sidecars: also says whether it holds the coordinator lock (its /metrics). */
export class SidecarSlot extends ProcessSlot {
  constructor(
    configFile: string,
    readonly port: number,
    logLevel: string,
  ) {
    super(`sidecar:${port}`, ['run', '--config', configFile], {
      LOCKSTEP_HTTP_PORT: String(port),
      LOCKSTEP_LOG_LEVEL: logLevel,
    });
  }

  /** Whether it says it holds the coordinator lock now; null when it cannot answer (paused, starting). */
  async active(): Promise<boolean | null> {
    if (!this.process || this.paused) return null;
    try {
      const response = await fetch(`http://127.0.0.1:${this.port}/metrics`, {
        signal: AbortSignal.timeout(1_000),
      });
      return /^lockstep_active 1$/m.test(await response.text());
    } catch {
      return null;
    }
  }
}

/** How many sidecars say they hold the coordinator lock (those that cannot answer are not counted). */
export async function activeSidecars(slots: readonly SidecarSlot[]): Promise<number> {
  return (await Promise.all(slots.map((s) => s.active()))).filter((a) => a === true).length;
}

/**
 * Samples the invariants that must hold at every instant: at most one
 * coordinator (as `coordinators` counts them; null: cannot tell now), and
 * every replica that answers holds the bank's total.
 */
export class InvariantSampler {
  readonly violations: string[] = [];
  readonly samples = { bank: 0, active: 0 };
  private sampling = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly replicas: readonly PostgresCluster[],
    private readonly coordinators: () => Promise<number | null>,
    private readonly unavailable: ReadonlySet<PostgresCluster>,
  ) {
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.sampling = false;
    await this.done;
  }

  private async loop(): Promise<void> {
    while (this.sampling) {
      const [active, totals] = await Promise.all([
        this.coordinators().catch(() => null),
        Promise.all(
          this.replicas.map(async (r) => (this.unavailable.has(r) ? null : await bankTotal(r.url))),
        ),
      ]);
      if (active !== null) this.samples.active++;
      if (active !== null && active > 1)
        this.violations.push(`${active} coordinators active at ${new Date().toISOString()}`);
      totals.forEach((total, i) => {
        if (total === null) return;
        this.samples.bank++;
        if (total !== BANK_TOTAL)
          this.violations.push(`${this.replicas[i]?.name} holds ${total}, not ${BANK_TOTAL}`);
      });
      await sleep(250);
    }
  }
}

/** What the nodes' control tables say, for a report (never throws). */
export async function controlState(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
): Promise<unknown> {
  const versions = await Promise.all(
    [primary, ...replicas].map((n) =>
      n
        .query<{ v: string }>(
          'SELECT (SELECT version FROM lockstep.applied) AS v UNION ALL SELECT version FROM lockstep.streams',
        )
        .then((rows) => `${n.name}: ${rows.map((r) => r.v).join(' ')}`)
        .catch((e: Error) => `${n.name}: ${e.message}`),
    ),
  );
  const control = await primary
    .query(
      `SELECT json_build_object('replicas', (SELECT json_agg(r) FROM lockstep.replica_status r),
              'slot', (SELECT json_agg(s) FROM pg_replication_slots s),
              'streams', (SELECT json_agg(t) FROM lockstep.streams t)) AS j`,
    )
    .catch((e: Error) => e.message);
  return { versions, control };
}
