import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  BASELINE_SETTINGS,
  benchProvider,
  copySchema,
  createBenchTables,
  identical,
} from '../support/bench-cluster.js';
import { SCALE, WIDE_ROWS } from './knobs.js';
import type { System } from './system.js';

/** One system on its own clusters, its stages run one at a time. */
export interface Rig {
  readonly system: System;
  readonly primary: PostgresCluster;
  readonly replicas: PostgresCluster[];
  /** Rows (a) copies to each replica. */
  readonly rows: number;
  /** Every run of every figure, by figure name. */
  readonly runs: Record<string, number[]>;
  /** Data equality after every stage run (false on any mismatch). */
  identical: boolean;
  /** Why the system was dropped part way, if it was. */
  failed?: string;
}

export function record(rig: Rig, figure: string, value: number): void {
  const runs = rig.runs[figure] ?? [];
  runs.push(value);
  rig.runs[figure] = runs;
}

export async function check(rig: Rig, stage: string): Promise<void> {
  const same = await identical(rig.primary, rig.replicas);
  rig.identical &&= same;
  console.error(`  ${rig.system.name} ${stage}: ${same ? 'data identical' : 'DATA MISMATCH'}`);
}

/**
 * Fresh clusters for one system, every system's with the same settings (the
 * baseline's, plus what the system needs loaded), the primary with the
 * bench's tables and the replicas with their schema (unless the system
 * creates it).
 */
export async function setUpRig(system: System): Promise<Rig> {
  const settings = { ...BASELINE_SETTINGS, ...system.settings };
  const replica = (n: number) =>
    benchProvider.start({
      role: 'replica',
      name: `${system.name}-r${n}`,
      settings: { ...settings, max_prepared_transactions: 20 },
    });
  const [primary, ...replicas] = await Promise.all([
    benchProvider.start({ role: 'primary', name: `${system.name}-primary`, settings }),
    replica(1),
    replica(2),
  ]);
  const p = primary as PostgresCluster;
  try {
    console.error(`${system.name}: pgbench -i -s ${SCALE}, ${WIDE_ROWS} wide rows`);
    const rows = await createBenchTables(p, SCALE, WIDE_ROWS);
    if (system.needsSchema) await copySchema(p, replicas);
    return { system, primary: p, replicas, rows, runs: {}, identical: true };
  } catch (error) {
    await Promise.all([p, ...replicas].map((c) => c.destroy()));
    throw error;
  }
}

/** Stops the system and removes its clusters. */
export async function tearDown(rig: Rig): Promise<void> {
  await rig.system.stop();
  await Promise.all([rig.primary, ...rig.replicas].map((c) => c.destroy()));
}
