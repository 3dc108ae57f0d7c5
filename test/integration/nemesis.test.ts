import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { freePort } from '../support/free-port.js';
import { controlState, FaultSchedule, InvariantSampler, SidecarSlot } from '../support/nemesis.js';
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
 * file for the faults injected, the samples taken and the sidecars' logs
 * (JSON), `LOCKSTEP_NEMESIS_LOG_LEVEL` sets their log level.
 */
const SECONDS = Number(process.env.LOCKSTEP_NEMESIS_SECONDS ?? 40);
const SEED = Number(process.env.LOCKSTEP_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const LOG_LEVEL = process.env.LOCKSTEP_NEMESIS_LOG_LEVEL ?? 'warn';
/** How long every replica may take to converge once the faults stop. */
const CONVERGE_SECONDS = Number(process.env.LOCKSTEP_NEMESIS_CONVERGE_SECONDS ?? 240);
const TABLES = ['accounts', 'events', 'marker'];

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

/** Every table identical, the money whole, nothing left prepared. */
async function expectConverged(
  primary: PostgresCluster,
  replicas: readonly PostgresCluster[],
): Promise<void> {
  await waitForMarker(primary, replicas, CONVERGE_SECONDS * 1_000);
  await expectIdentical(primary, replicas, TABLES);
  expect(await bankTotal(primary.url)).toBe(BANK_TOTAL);
  // Recovery (every 2 s here) finishes what a killed sidecar left prepared.
  await eventually(
    async () => (await preparedGids([primary, ...replicas])).length === 0,
    'no lockstep gid prepared anywhere',
    60_000,
  );
}

describe('nemesis', () => {
  it(
    `keeps money constant on every replica, one sidecar active, nothing lost or doubled or prepared (seed ${SEED}, ${SECONDS} s)`,
    async () => {
      const { primary } = clusters;
      const replicas = clusters.replicas as PostgresCluster[];
      const slots = [
        new SidecarSlot(clusters.configFile, await freePort(), LOG_LEVEL),
        new SidecarSlot(clusters.configFile, await freePort(), LOG_LEVEL),
      ];
      for (const slot of slots) slot.start();
      const schedule = new FaultSchedule(primary, replicas, slots, seededRandom(SEED));
      const invariants = new InvariantSampler(replicas, slots, schedule.unavailable);
      await eventually(
        async () => (await Promise.all(slots.map((s) => s.active()))).includes(true),
        'a sidecar to be active',
      );
      const bank = bankWorkload(primary.url, SEED);
      const events = eventsWorkload(primary.url, SEED + 1);
      await schedule.run(Date.now() + SECONDS * 1_000);
      const committed = { transfers: await bank.stop(), events: await events.stop() };
      const codes: Array<number | null> = [];
      let failure: Error | null = null;
      try {
        await expectConverged(primary, replicas);
      } catch (error) {
        failure = error as Error;
      } finally {
        await invariants.stop();
        const state = await controlState(primary, replicas).catch((e: Error) => e.message);
        for (const slot of slots) codes.push(await slot.stop());
        // A failed run always leaves its report (the seed alone may not replay a timing).
        const failed =
          failure !== null || invariants.violations.length > 0 || codes.some((c) => c !== 0);
        const reportFile =
          process.env.LOCKSTEP_NEMESIS_REPORT ??
          (failed ? path.join(os.tmpdir(), `lockstep-nemesis-${SEED}.json`) : null);
        if (reportFile) {
          const report = {
            seed: SEED,
            seconds: SECONDS,
            faults: schedule.injected,
            samples: invariants.samples,
            committed,
            violations: invariants.violations,
            codes,
            state,
            logs: slots.map((s) => `${s.history}${s.process?.output ?? ''}`.slice(-300_000)),
          };
          writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
          if (failed && failure) failure.message += ` (report: ${reportFile})`;
        }
      }
      if (failure) throw failure;
      expect(invariants.violations).toEqual([]);
      expect(codes).toEqual([0, 0]);
      expect(invariants.samples.bank).toBeGreaterThan(0);
      expect(committed.transfers).toBeGreaterThan(0);
    },
    (SECONDS + 420) * 1_000,
  );
});
