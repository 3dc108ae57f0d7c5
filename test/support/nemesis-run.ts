import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids, waitForMarker } from './compare-nodes.js';
import { controlState, InvariantSampler, type ProcessSlot } from './nemesis.js';
import { FaultSchedule, type FaultSet } from './nemesis-faults.js';
import {
  BANK_TOTAL,
  bankTotal,
  bankWorkload,
  endSampleSessions,
  eventsWorkload,
  seededRandom,
} from './nemesis-workloads.js';

/**
 * The knobs every nemesis reads: `LOCKSTEP_NEMESIS_SECONDS` (its length),
 * `LOCKSTEP_NEMESIS_SEED` (replays a schedule), `LOCKSTEP_NEMESIS_LOG_LEVEL`
 * (the processes' log level), `LOCKSTEP_NEMESIS_CONVERGE_SECONDS` (how long
 * every replica may take to converge once the faults stop).
 */
export function nemesisSettings(defaultSeconds: number) {
  return {
    seconds: Number(process.env.LOCKSTEP_NEMESIS_SECONDS ?? defaultSeconds),
    seed: Number(process.env.LOCKSTEP_NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31)),
    logLevel: process.env.LOCKSTEP_NEMESIS_LOG_LEVEL ?? 'warn',
    convergeSeconds: Number(process.env.LOCKSTEP_NEMESIS_CONVERGE_SECONDS ?? 240),
  };
}

export type NemesisSettings = ReturnType<typeof nemesisSettings>;

/** What one nemesis run is made of. */
export interface Nemesis {
  /** Names the report file (`lockstep-<name>-<seed>.json`). */
  name: string;
  settings: NemesisSettings;
  primary: PostgresCluster;
  replicas: readonly PostgresCluster[];
  /** Every lockstep process; started here, each must exit 0 on SIGTERM at the end. */
  slots: readonly ProcessSlot[];
  /** What the schedule draws from (each fault equally often unless weighted). */
  faults: readonly FaultSet[];
  /** How many processes hold the coordinator lock now (null: cannot tell). */
  coordinators: () => Promise<number | null>;
  /** Compared row by row on every node at the end. */
  tables: readonly string[];
  /** More for the report (never throws). */
  report?: () => Promise<Record<string, unknown>>;
}

/** A long log's start (how it went wrong) and end (where it stayed), at most 300 KB. */
function headAndTail(log: string): string {
  if (log.length <= 300_000) return log;
  return `${log.slice(0, 100_000)}\n[… ${log.length - 300_000} characters left out …]\n${log.slice(-200_000)}`;
}

/** Every table identical, the money whole, nothing left prepared. */
async function expectConverged(nemesis: Nemesis): Promise<void> {
  const { primary, replicas } = nemesis;
  await waitForMarker(primary, replicas, nemesis.settings.convergeSeconds * 1_000);
  await expectIdentical(primary, replicas, nemesis.tables);
  expect(await bankTotal(primary.url)).toBe(BANK_TOTAL);
  // Recovery (every 2 s here) finishes what a killed process left prepared.
  await eventually(
    async () => (await preparedGids([primary, ...replicas])).length === 0,
    'no lockstep gid prepared anywhere',
    60_000,
  );
}

/**
 * Runs the bank and events workloads under the seeded fault schedule while
 * the invariants are sampled, then checks convergence and that every process
 * exits 0; a failed run (or `LOCKSTEP_NEMESIS_REPORT`) leaves a JSON report
 * with the faults, samples and logs.
 */
export async function runNemesis(nemesis: Nemesis): Promise<void> {
  const { primary, replicas, slots, settings } = nemesis;
  for (const slot of slots) slot.start();
  const faults = new FaultSchedule(nemesis.faults, seededRandom(settings.seed));
  const invariants = new InvariantSampler(replicas, nemesis.coordinators, faults.unavailable);
  await eventually(async () => (await nemesis.coordinators()) === 1, 'a coordinator to be active');
  const bank = bankWorkload(primary.url, settings.seed);
  const events = eventsWorkload(primary.url, settings.seed + 1);
  await faults.run(Date.now() + settings.seconds * 1_000);
  const committed = { transfers: await bank.stop(), events: await events.stop() };
  const codes: Record<string, number | null> = {};
  let failure: Error | null = null;
  try {
    await expectConverged(nemesis);
  } catch (error) {
    failure = error as Error;
  } finally {
    await invariants.stop();
    await endSampleSessions();
    const state = await controlState(primary, replicas).catch((e: Error) => e.message);
    for (const slot of slots) codes[slot.name] = await slot.stop();
    // A failed run always leaves its report (the seed alone may not replay a timing).
    const failed =
      failure !== null ||
      invariants.violations.length > 0 ||
      Object.values(codes).some((c) => c !== 0);
    const reportFile =
      process.env.LOCKSTEP_NEMESIS_REPORT ??
      (failed ? path.join(os.tmpdir(), `lockstep-${nemesis.name}-${settings.seed}.json`) : null);
    if (reportFile) {
      const report = {
        seed: settings.seed,
        seconds: settings.seconds,
        faults: faults.injected,
        timeline: faults.timeline,
        samples: invariants.samples,
        committed,
        violations: invariants.violations,
        codes,
        state,
        ...(await nemesis.report?.()),
        logs: Object.fromEntries(slots.map((s) => [s.name, headAndTail(s.output)])),
      };
      writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
      if (failed && failure) failure.message += ` (report: ${reportFile})`;
    }
  }
  if (failure) throw failure;
  expect(invariants.violations).toEqual([]);
  expect(codes).toEqual(Object.fromEntries(slots.map((s) => [s.name, 0])));
  expect(invariants.samples.bank).toBeGreaterThan(0);
  expect(committed.transfers).toBeGreaterThan(0);
}
