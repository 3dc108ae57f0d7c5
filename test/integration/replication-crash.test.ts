import { describe, expect, it } from 'vitest';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
/** How many times the sidecar is SIGKILLed (the issue asks for at least 20). */
const KILLS = Number(process.env.LOCKSTEP_KILL_LOOPS ?? 20);
// Small batches so kills land between and inside batches alike.
const clusters = useAttached({
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  config: { batch: { maxRows: 200, maxMs: 10 } },
});

describe('crash safety', () => {
  it(`loses nothing and doubles nothing when the sidecar is SIGKILLed ${KILLS} times under load`, async () => {
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      for (let i = 0; i < KILLS; i++) {
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 900));
        sidecar.kill('SIGKILL');
        await sidecar.exited;
        sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      }
      const work = await workload.stop();
      expect(work.transactions).toBeGreaterThan(KILLS * 10);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      // The stored version of each replica equals the number of packets: none skipped, none twice.
      const applied = await Promise.all(
        clusters.replicas.map(async (replica) => {
          const [row] = await replica.query<{ version: string }>(
            'SELECT version::text FROM lockstep.applied',
          );
          return Number(row?.version);
        }),
      );
      // The head is the sidecar's status, recorded a few times a second: give it time to record
      // the marker's packet (a doubled packet would keep a replica past it for good).
      const head = async () =>
        Number(
          (
            await clusters.primary.query<{ version: string }>(
              'SELECT version::text FROM lockstep.streams',
            )
          )[0]?.version,
        );
      await eventually(
        async () => (await head()) + 1 >= Math.max(...applied),
        'the recorded head to reach the replicas',
        10_000,
      ).catch(() => undefined);
      const recorded = await head();
      for (const version of applied) {
        expect(version).toBeGreaterThanOrEqual(work.transactions);
        expect(version).toBeLessThanOrEqual(recorded + 1);
      }
    } finally {
      await workload.stop();
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
