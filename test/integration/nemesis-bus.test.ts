import { describe, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { ProcessSlot } from '../support/nemesis.js';
import { coordinatorLocks, natsFaults } from '../support/nemesis-bus-faults.js';
import { postgresFaults, processFaults } from '../support/nemesis-faults.js';
import { nemesisSettings, runNemesis } from '../support/nemesis-run.js';
import { NEMESIS_SCHEMA, NEMESIS_SEED } from '../support/nemesis-workloads.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

/**
 * The nemesis on the packet bus: two `lockstep run` publishers (HA) publish to
 * a 3-node JetStream cluster, one `lockstep agent` per replica applies (and a
 * second stands by for replica1), the same workloads, invariants and knobs as
 * nemesis.test.ts, with agents, publishers and NATS servers among the faults.
 */
const settings = nemesisSettings(40);
const SLOT = 'lockstep';

const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 3,
  schema: NEMESIS_SCHEMA,
  seed: NEMESIS_SEED,
  config: {
    slot: SLOT,
    twoPhase: { tables: ['public.accounts'], voteTimeoutMs: 2_000, recoveryIntervalMs: 2_000 },
    applyTimeoutMs: 3_000,
    retry: { initialMs: 200, maxMs: 2_000 },
    // Read when the file is written (in beforeAll): the NATS cluster is up by then.
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

describe('nemesis on the bus', () => {
  it(
    `keeps money constant on every replica through NATS faults, nothing lost or doubled or prepared (seed ${settings.seed}, ${settings.seconds} s)`,
    async () => {
      const { primary, configFile } = clusters;
      const replicas = clusters.replicas as PostgresCluster[];
      const env = { LOCKSTEP_LOG_LEVEL: settings.logLevel };
      const publishers = ['a', 'b'].map(
        (n) => new ProcessSlot(`publisher-${n}`, ['run', '--config', configFile], env),
      );
      // replica1 has a standby agent: its replica lock decides which one applies.
      const agents = ['replica1', 'replica1', 'replica2', 'replica3'].map(
        (replica, i) =>
          new ProcessSlot(
            `agent-${replica}${i === 1 ? '-standby' : ''}`,
            ['agent', '--config', configFile, '--replica', replica],
            env,
          ),
      );
      await runNemesis({
        name: 'nemesis-bus',
        settings,
        primary,
        replicas,
        // Agents first: the coordinator's first round finds them listening.
        slots: [...agents, ...publishers],
        faults: [
          processFaults('publisher', publishers),
          processFaults('agent', agents),
          postgresFaults(primary, replicas),
          natsFaults(nats.cluster),
        ],
        coordinators: () => coordinatorLocks(primary.url, SLOT),
        tables: ['accounts', 'events', 'marker'],
        report: async () => ({ nats: nats.cluster.logTails() }),
      });
    },
    (settings.seconds + 420) * 1_000,
  );
});
