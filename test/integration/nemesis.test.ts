import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import {
  BANK_TOTAL,
  bankTotal,
  bankWorkload,
  eventsWorkload,
  NEMESIS_SCHEMA,
  NEMESIS_SEED,
  seededRandom,
} from '../support/nemesis-workloads.js';
import { useAttached } from '../support/use-attached.js';

/**
 * The nemesis: two sidecars (HA) replicate a bank workload on a critical table
 * and a one-phase workload to three replicas while a seeded schedule injects
 * faults. `LOCKSTEP_NEMESIS_SECONDS` sets the length (CI runs a short one),
 * `LOCKSTEP_NEMESIS_SEED` replays a schedule, `LOCKSTEP_NEMESIS_REPORT` names a
 * file for the faults injected and the samples taken (JSON).
 */
const SECONDS = Number(process.env.LOCKSTEP_NEMESIS_SECONDS ?? 40);
const SEED = Number(process.env.LOCKSTEP_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TABLES = ['accounts', 'events', 'marker'];
/** How long every replica may take to converge once the faults stop. */
const CONVERGE_SECONDS = Number(process.env.LOCKSTEP_NEMESIS_CONVERGE_SECONDS ?? 240);

const clusters = useAttached({
  replicas: 3,
  schema: NEMESIS_SCHEMA,
  seed: NEMESIS_SEED,
  config: {
    twoPhase: { tables: ['public.accounts'], voteTimeoutMs: 2_000, recoveryIntervalMs: 2_000 },
    applyTimeoutMs: 3_000,
    retry: { initialMs: 200, maxMs: 2_000 },
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One of the two sidecars: may be killed (and is started again), or paused with SIGSTOP. */
class SidecarSlot {
  process: LockstepProcess | null = null;
  paused = false;

  constructor(
    private readonly configFile: string,
    readonly port: number,
  ) {}

  /** What earlier processes of this slot printed. */
  history = '';

  start(): void {
    if (this.process) this.history += this.process.output;
    this.process = new LockstepProcess(['run', '--config', this.configFile], {
      LOCKSTEP_HTTP_PORT: String(this.port),
      LOCKSTEP_LOG_LEVEL: process.env.LOCKSTEP_NEMESIS_LOG_LEVEL ?? 'warn',
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
      const text = await response.text();
      return /^lockstep_active 1$/m.test(text);
    } catch {
      return null;
    }
  }
}

type FaultKind =
  | 'kill-sidecar'
  | 'pause-sidecar'
  | 'terminate-lock-session'
  | 'terminate-connection'
  | 'restart-primary'
  | 'restart-replica'
  | 'freeze-replica';
const KINDS: readonly FaultKind[] = [
  'kill-sidecar',
  'pause-sidecar',
  'terminate-lock-session',
  'terminate-connection',
  'restart-primary',
  'restart-replica',
  'freeze-replica',
];

describe('nemesis', () => {
  it(
    `keeps money constant on every replica, one sidecar active, nothing lost or doubled or prepared (seed ${SEED}, ${SECONDS} s)`,
    async () => {
      const { primary } = clusters;
      const replicas = clusters.replicas as PostgresCluster[];
      const random = seededRandom(SEED);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const between = (min: number, max: number) => min + Math.floor(random() * (max - min));
      const slots = [
        new SidecarSlot(clusters.configFile, await freePort()),
        new SidecarSlot(clusters.configFile, await freePort()),
      ];
      for (const slot of slots) slot.start();
      const unavailable = new Set<PostgresCluster>();
      const faults: Record<string, number> = {};
      const violations: string[] = [];
      const samples = { bank: 0, active: 0, bothActive: 0 };
      let sampling = true;

      const sampler = (async () => {
        while (sampling) {
          const [states, totals] = await Promise.all([
            Promise.all(slots.map((s) => s.active())),
            Promise.all(
              replicas.map(async (r) => (unavailable.has(r) ? null : await bankTotal(r.url))),
            ),
          ]);
          samples.active++;
          if (states.filter((a) => a === true).length > 1) {
            samples.bothActive++;
            violations.push(`two sidecars active at ${new Date().toISOString()}`);
          }
          totals.forEach((total, i) => {
            if (total === null) return;
            samples.bank++;
            if (total !== BANK_TOTAL)
              violations.push(`${replicas[i]?.name} holds ${total}, not ${BANK_TOTAL}`);
          });
          await sleep(250);
        }
      })();

      await eventually(
        async () => (await Promise.all(slots.map((s) => s.active()))).includes(true),
        'a sidecar to be active',
      );
      const bank = bankWorkload(primary.url, SEED);
      const events = eventsWorkload(primary.url, SEED + 1);
      const terminate = (node: PostgresCluster, where: string) =>
        node
          .query(
            `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE ${where} AND a.pid <> pg_backend_pid()`,
          )
          .catch(() => undefined);

      const until = Date.now() + SECONDS * 1_000;
      try {
        while (Date.now() < until) {
          await sleep(between(300, 1_500));
          const kind = pick(KINDS);
          faults[kind] = (faults[kind] ?? 0) + 1;
          switch (kind) {
            case 'kill-sidecar': {
              const slot = pick(slots);
              slot.signal('SIGKILL');
              await sleep(between(200, 2_000));
              slot.start();
              break;
            }
            case 'pause-sidecar': {
              const slot = pick(slots);
              slot.signal('SIGSTOP');
              await sleep(between(500, 4_000));
              slot.signal('SIGCONT');
              break;
            }
            case 'terminate-lock-session':
              await terminate(
                primary,
                `a.application_name = 'lockstep-coordinator' AND a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`,
              );
              break;
            case 'terminate-connection': {
              const node = pick([primary, ...replicas]);
              await terminate(
                node,
                `a.pid = (SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'lockstep%' ORDER BY random() LIMIT 1)`,
              );
              break;
            }
            case 'restart-primary':
              unavailable.add(primary);
              await primary.stopServer('fast');
              await sleep(between(100, 1_500));
              await primary.startServer();
              unavailable.delete(primary);
              break;
            case 'restart-replica': {
              const replica = pick(replicas);
              unavailable.add(replica);
              await replica.stopServer('fast');
              await sleep(between(200, 3_000));
              await replica.startServer();
              unavailable.delete(replica);
              break;
            }
            case 'freeze-replica': {
              const replica = pick(replicas);
              unavailable.add(replica);
              await replica.freezeServer();
              await sleep(between(500, 5_000));
              await replica.thawServer();
              unavailable.delete(replica);
              break;
            }
          }
        }
      } finally {
        for (const slot of slots) if (slot.paused) slot.signal('SIGCONT');
        for (const replica of replicas) await replica.thawServer();
      }

      const committed = { transfers: await bank.stop(), events: await events.stop() };
      const codes: Array<number | null> = [];
      try {
        await waitForMarker(primary, replicas, CONVERGE_SECONDS * 1_000);
        await expectIdentical(primary, replicas, TABLES);
        expect(await bankTotal(primary.url)).toBe(BANK_TOTAL);
        // Recovery (every 2 s here) finishes what a killed sidecar left prepared.
        await eventually(
          async () => (await preparedGids([primary, ...replicas])).length === 0,
          'no lockstep gid prepared anywhere',
          60_000,
        );
      } finally {
        sampling = false;
        await sampler;
        const versions = await Promise.all(
          [primary, ...replicas].map((n) =>
            n
              .query<{ v: string }>(
                `SELECT (SELECT version FROM lockstep.applied) AS v UNION ALL SELECT version FROM lockstep.streams`,
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
        const report = {
          control,
          seed: SEED,
          seconds: SECONDS,
          faults,
          samples,
          committed,
          violations,
          versions,
          logs: slots.map((slot) => `${slot.history}${slot.process?.output ?? ''}`.slice(-300_000)),
        };
        if (process.env.LOCKSTEP_NEMESIS_REPORT)
          writeFileSync(
            process.env.LOCKSTEP_NEMESIS_REPORT,
            `${JSON.stringify(report, null, 2)}\n`,
          );
        for (const slot of slots) {
          slot.process?.kill('SIGTERM');
          codes.push((await slot.process?.exited) ?? null);
        }
      }
      expect(violations).toEqual([]);
      expect(codes).toEqual([0, 0]);
      expect(samples.bank).toBeGreaterThan(0);
      expect(committed.transfers).toBeGreaterThan(0);
    },
    (SECONDS + 420) * 1_000,
  );
});
