import { describe, expect, it } from 'vitest';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
// A small window, so the returning replica's delta no longer fits in memory and the slot is re-read.
const clusters = useAttached({
  replicas: 1,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  config: { windowChanges: 2_000 },
});

describe('the only replica going down', () => {
  it('catches up once it is back, though no replica could take packets meanwhile', async () => {
    const [r1] = clusters.replicas as [(typeof clusters.replicas)[number]];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    try {
      await waitForMarker(clusters.primary, clusters.replicas);
      await r1.stopServer('immediate');
      await eventually(
        async () => sidecar.logEvent('replica-stopped', { replica: 'replica1' }) !== undefined,
        'replica1 to be halted',
      );
      // More than the window holds is written while the replica is away.
      await new Promise((r) => setTimeout(r, 3_000));
      await r1.startServer();
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas, 60_000);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      await workload.stop();
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
