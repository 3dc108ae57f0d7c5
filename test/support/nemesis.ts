import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';
import { LockstepProcess } from './lockstep-process.js';
import { BANK_TOTAL, bankTotal } from './nemesis-workloads.js';

/** One of the sidecars: may be killed (and is started again), or paused with SIGSTOP. */
export class SidecarSlot {
  process: LockstepProcess | null = null;
  paused = false;
  /** What earlier processes of this slot printed. */
  history = '';

  constructor(
    private readonly configFile: string,
    readonly port: number,
    private readonly logLevel: string,
  ) {}

  start(): void {
    if (this.process) this.history += this.process.output;
    this.process = new LockstepProcess(['run', '--config', this.configFile], {
      LOCKSTEP_HTTP_PORT: String(this.port),
      LOCKSTEP_LOG_LEVEL: this.logLevel,
    });
    this.paused = false;
  }

  signal(signal: NodeJS.Signals): void {
    this.process?.kill(signal);
    if (signal === 'SIGSTOP') this.paused = true;
    if (signal === 'SIGCONT') this.paused = false;
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

  /** Ends it cleanly; its exit code. */
  async stop(): Promise<number | null> {
    if (this.paused) this.signal('SIGCONT');
    this.process?.kill('SIGTERM');
    return (await this.process?.exited) ?? null;
  }
}

/** The faults the schedule draws from. */
export const FAULT_KINDS = [
  'kill-sidecar',
  'pause-sidecar',
  'terminate-lock-session',
  'terminate-connection',
  'restart-primary',
  'restart-replica',
  'freeze-replica',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Injects one fault at a time, drawn from a seeded PRNG; each heals before the next. */
export class FaultSchedule {
  readonly injected: Partial<Record<FaultKind, number>> = {};
  /** Nodes that cannot answer now (stopped or frozen): not sampled. */
  readonly unavailable = new Set<PostgresCluster>();

  constructor(
    private readonly primary: PostgresCluster,
    private readonly replicas: readonly PostgresCluster[],
    private readonly slots: readonly SidecarSlot[],
    private readonly random: () => number,
  ) {}

  /** Injects faults until `until` (a time in ms), then thaws and resumes everything. */
  async run(until: number): Promise<void> {
    try {
      while (Date.now() < until) {
        await sleep(this.between(300, 1_500));
        const kind = this.pick(FAULT_KINDS);
        this.injected[kind] = (this.injected[kind] ?? 0) + 1;
        await this.inject(kind);
      }
    } finally {
      for (const slot of this.slots) if (slot.paused) slot.signal('SIGCONT');
      for (const replica of this.replicas) await replica.thawServer();
    }
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'kill-sidecar': {
        const slot = this.pick(this.slots);
        slot.signal('SIGKILL');
        await sleep(this.between(200, 2_000));
        slot.start();
        return;
      }
      case 'pause-sidecar': {
        const slot = this.pick(this.slots);
        slot.signal('SIGSTOP');
        await sleep(this.between(500, 4_000));
        slot.signal('SIGCONT');
        return;
      }
      case 'terminate-lock-session':
        return this.terminate(
          this.primary,
          `a.application_name = 'lockstep-coordinator' AND a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`,
        );
      case 'terminate-connection':
        return this.terminate(
          this.pick([this.primary, ...this.replicas]),
          `a.pid = (SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'lockstep%' ORDER BY random() LIMIT 1)`,
        );
      case 'restart-primary':
        return this.down(this.primary, async () => {
          await this.primary.stopServer('fast');
          await sleep(this.between(100, 1_500));
          await this.primary.startServer();
        });
      case 'restart-replica': {
        const replica = this.pick(this.replicas);
        return this.down(replica, async () => {
          await replica.stopServer('fast');
          await sleep(this.between(200, 3_000));
          await replica.startServer();
        });
      }
      case 'freeze-replica': {
        const replica = this.pick(this.replicas);
        return this.down(replica, async () => {
          await replica.freezeServer();
          await sleep(this.between(500, 5_000));
          await replica.thawServer();
        });
      }
    }
  }

  private async down(node: PostgresCluster, fault: () => Promise<void>): Promise<void> {
    this.unavailable.add(node);
    try {
      await fault();
    } finally {
      this.unavailable.delete(node);
    }
  }

  private async terminate(node: PostgresCluster, where: string): Promise<void> {
    await node
      .query(
        `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE ${where} AND a.pid <> pg_backend_pid()`,
      )
      .catch(() => undefined);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)] as T;
  }

  private between(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min));
  }
}

/**
 * Samples the invariants that must hold at every instant: at most one sidecar
 * says it is active, and every replica that answers holds the bank's total.
 */
export class InvariantSampler {
  readonly violations: string[] = [];
  readonly samples = { bank: 0, active: 0 };
  private sampling = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly replicas: readonly PostgresCluster[],
    private readonly slots: readonly SidecarSlot[],
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
      const [states, totals] = await Promise.all([
        Promise.all(this.slots.map((s) => s.active())),
        Promise.all(
          this.replicas.map(async (r) => (this.unavailable.has(r) ? null : await bankTotal(r.url))),
        ),
      ]);
      this.samples.active++;
      if (states.filter((a) => a === true).length > 1)
        this.violations.push(`two sidecars active at ${new Date().toISOString()}`);
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
