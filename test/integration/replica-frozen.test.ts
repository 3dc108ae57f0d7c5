import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { markedUnresponsive } from '../support/frozen-replica.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const clusters = useAttached({
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  // A small window: without a deadline the frozen replica's cursor would pin it within a second.
  config: { applyTimeoutMs: 2_000, windowChanges: 5_000, batch: { maxRows: 1_000 } },
});

describe('a replica whose server freezes (SIGSTOP: connections open, nothing answers)', () => {
  it('is marked unresponsive and released; the other replica keeps applying; after the thaw all converge', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let exitCode: number | null = null;
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    let frozen = false;
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await waitForMarker(clusters.primary, clusters.replicas);
      await r2.freezeServer();
      frozen = true;
      await markedUnresponsive(sidecar, 'replica2');
      // The healthy replica keeps up with the workload while the other stays frozen.
      const before = await appliedVersion(r1);
      await waitForMarker(clusters.primary, [r1], 30_000);
      await waitForMarker(clusters.primary, [r1], 30_000);
      expect(await appliedVersion(r1)).toBeGreaterThan(before + 10);
      await r2.thawServer();
      frozen = false;
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      if (frozen) await r2.thawServer();
      await workload.stop();
      sidecar.kill('SIGTERM');
      exitCode = await sidecar.exited;
    }
    expect(exitCode).toBe(0);
  });
});
