import { describe, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { freePort } from '../support/free-port.js';
import { activeSidecars, SidecarSlot } from '../support/nemesis.js';
import { postgresFaults, processFaults } from '../support/nemesis-faults.js';
import { nemesisSettings, runNemesis } from '../support/nemesis-run.js';
import { NEMESIS_SCHEMA, NEMESIS_SEED } from '../support/nemesis-workloads.js';
import { useAttached } from '../support/use-attached.js';

/**
 * The nemesis: two sidecars (HA) replicate a bank workload on a critical table
 * and a one-phase workload to three replicas while a seeded schedule injects
 * faults. `LOCKSTEP_NEMESIS_SECONDS` sets the length (CI runs a short one),
 * `LOCKSTEP_NEMESIS_SEED` replays a schedule, `LOCKSTEP_NEMESIS_REPORT` names a
 * file for the faults injected, the samples taken and the sidecars' logs
 * (JSON), `LOCKSTEP_NEMESIS_LOG_LEVEL` sets their log level. The bus variant:
 * nemesis-bus.test.ts.
 */
const settings = nemesisSettings(40);

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

describe('nemesis', () => {
  it(
    `keeps money constant on every replica, one sidecar active, nothing lost or doubled or prepared (seed ${settings.seed}, ${settings.seconds} s)`,
    async () => {
      const { primary } = clusters;
      const replicas = clusters.replicas as PostgresCluster[];
      const slots = [
        new SidecarSlot(clusters.configFile, await freePort(), settings.logLevel),
        new SidecarSlot(clusters.configFile, await freePort(), settings.logLevel),
      ];
      await runNemesis({
        name: 'nemesis',
        settings,
        primary,
        replicas,
        slots,
        // Sidecars first: a seed replays the schedule it drew before the bus variant existed.
        faults: [processFaults('sidecar', slots), postgresFaults(primary, replicas)],
        coordinators: () => activeSidecars(slots),
        tables: ['accounts', 'events', 'marker'],
      });
    },
    (settings.seconds + 420) * 1_000,
  );
});
