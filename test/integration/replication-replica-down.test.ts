import { describe, expect, it } from 'vitest';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
// A small window, so the returning replica's delta no longer fits in memory and the slot is re-read.
const clusters = useAttached({
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  config: { windowChanges: 2_000 },
});

describe('a replica that goes down', () => {
  it('is halted alone while the other replica keeps applying, then catches up through deltas', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    try {
      await eventually(
        async () => (await appliedVersion(r2)) > 50,
        'replica2 to apply some packets',
      );
      await r2.stopServer('immediate');
      const r1Before = await appliedVersion(r1);
      await new Promise((r) => setTimeout(r, 3_000));
      // The other replica never stopped.
      expect(await appliedVersion(r1)).toBeGreaterThan(r1Before + 50);
      const halted = await sidecar.untilEvent('replica-stopped', {
        replica: 'replica2',
        err: /unreachable/,
      });
      expect(halted?.fix).toMatch(/start the replica server/);

      await r2.startServer();
      await eventually(
        async () => (await appliedVersion(r2)) >= (await appliedVersion(r1)) - 20,
        'replica2 to catch up',
        60_000,
      );
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      // The gap was healed by re-reading the slot (the window was too small to hold it).
      await sidecar.untilEvent('rewind', { replica: 'replica2' });
    } finally {
      await workload.stop();
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
