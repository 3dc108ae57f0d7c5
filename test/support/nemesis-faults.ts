import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';
import type { ProcessSlot } from './nemesis.js';

/** What a fault draws its target and durations from (the schedule's seeded PRNG). */
export interface FaultTools {
  pick<T>(items: readonly T[]): T;
  between(min: number, max: number): number;
  /** Runs `fault` with `node` counted unavailable: its bank total is not sampled meanwhile. */
  down(node: PostgresCluster, fault: () => Promise<void>): Promise<void>;
}

/** One kind of fault: injected, then healed before it returns; says what it hit. */
export interface Fault {
  readonly kind: string;
  /** How often it is drawn relative to the others (1 when not given). */
  readonly weight?: number;
  inject(tools: FaultTools): Promise<string>;
}

/** Faults on one part of the system, and how to heal all of them should the schedule stop midway. */
export interface FaultSet {
  readonly faults: readonly Fault[];
  heal(): Promise<void>;
}

/** Injects one fault at a time, drawn from a seeded PRNG; each heals before the next. */
export class FaultSchedule {
  readonly injected: Record<string, number> = {};
  /** Each fault injected: when, what, on which target. */
  readonly timeline: string[] = [];
  /** Nodes that cannot answer now (stopped or frozen): not sampled. */
  readonly unavailable = new Set<PostgresCluster>();
  private readonly faults: readonly Fault[];
  private readonly tools: FaultTools;

  constructor(
    private readonly sets: readonly FaultSet[],
    private readonly random: () => number,
  ) {
    this.faults = sets.flatMap((s) => s.faults);
    this.tools = {
      pick: (items) => items[Math.floor(this.random() * items.length)] as never,
      between: (min, max) => min + Math.floor(this.random() * (max - min)),
      down: async (node, fault) => {
        this.unavailable.add(node);
        try {
          await fault();
        } finally {
          this.unavailable.delete(node);
        }
      },
    };
  }

  /** Injects faults until `until` (a time in ms), then heals everything. */
  async run(until: number): Promise<void> {
    try {
      while (Date.now() < until) {
        await sleep(this.tools.between(300, 1_500));
        const fault = this.draw();
        this.injected[fault.kind] = (this.injected[fault.kind] ?? 0) + 1;
        const at = new Date().toISOString();
        const target = await fault.inject(this.tools);
        this.timeline.push(`${at} ${fault.kind} ${target} (healed ${new Date().toISOString()})`);
      }
    } finally {
      for (const set of this.sets) await set.heal();
    }
  }

  private draw(): Fault {
    const total = this.faults.reduce((sum, f) => sum + (f.weight ?? 1), 0);
    let point = this.random() * total;
    for (const fault of this.faults) {
      point -= fault.weight ?? 1;
      if (point < 0) return fault;
    }
    return this.faults[this.faults.length - 1] as Fault;
  }
}

/** `kill-<label>` (SIGKILL, started again a moment later) and `pause-<label>` (SIGSTOP, then SIGCONT) of one of `slots`. */
export function processFaults(label: string, slots: readonly ProcessSlot[]): FaultSet {
  return {
    faults: [
      {
        kind: `kill-${label}`,
        async inject({ pick, between }) {
          const slot = pick(slots);
          slot.signal('SIGKILL');
          await sleep(between(200, 2_000));
          slot.start();
          return slot.name;
        },
      },
      {
        kind: `pause-${label}`,
        async inject({ pick, between }) {
          const slot = pick(slots);
          slot.signal('SIGSTOP');
          await sleep(between(500, 4_000));
          slot.signal('SIGCONT');
          return slot.name;
        },
      },
    ],
    heal: async () => {
      for (const slot of slots) if (slot.paused) slot.signal('SIGCONT');
    },
  };
}

async function terminate(node: PostgresCluster, where: string): Promise<string> {
  await node
    .query(
      `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE ${where} AND a.pid <> pg_backend_pid()`,
    )
    .catch(() => undefined);
  return node.name;
}

/** Faults of PostgreSQL: sessions terminated, the primary restarted, a replica stopped or frozen. */
export function postgresFaults(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
): FaultSet {
  const restart = async (node: PostgresCluster, ms: number) => {
    await node.stopServer('fast');
    await sleep(ms);
    await node.startServer();
  };
  const faults: Fault[] = [
    {
      kind: 'terminate-lock-session',
      inject: () =>
        terminate(
          primary,
          `a.application_name = 'lockstep-coordinator' AND a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`,
        ),
    },
    {
      kind: 'terminate-connection',
      inject: ({ pick }) =>
        terminate(
          pick([primary, ...replicas]),
          `a.pid = (SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'lockstep%' ORDER BY random() LIMIT 1)`,
        ),
    },
    {
      kind: 'restart-primary',
      async inject({ between, down }) {
        await down(primary, () => restart(primary, between(100, 1_500)));
        return primary.name;
      },
    },
    {
      kind: 'restart-replica',
      async inject({ pick, between, down }) {
        const replica = pick(replicas);
        await down(replica, () => restart(replica, between(200, 3_000)));
        return replica.name;
      },
    },
    {
      kind: 'freeze-replica',
      async inject({ pick, between, down }) {
        const replica = pick(replicas);
        await down(replica, async () => {
          await replica.freezeServer();
          await sleep(between(500, 5_000));
          await replica.thawServer();
        });
        return replica.name;
      },
    },
  ];
  return {
    faults,
    heal: async () => {
      for (const replica of replicas) await replica.thawServer();
    },
  };
}
