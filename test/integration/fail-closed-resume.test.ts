import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

// A tiny lag limit: a replica down for a moment is already "too far behind".
const clusters = useAttached({
  replicas: 2,
  schema: NUMBERED_SCHEMA,
  config: { maxLagBytes: 256 * 1024 },
});

let next = 1;
/** Rows in one transaction each of 500, enough WAL to pass maxLagBytes. */
async function writeLots(primary: PostgresCluster): Promise<void> {
  const from = next;
  next += 2_000;
  for (let at = from; at < next; at += 500)
    await primary.query(`INSERT INTO t SELECT g, g FROM generate_series(${at}, ${at + 499}) g`);
}

describe('the resume point is checked against the slot, failing closed', () => {
  it('a replica marked stale stays stale across a restart, and a slot that cannot be read holds the stream instead of being skipped', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await writeLots(primary);
      await waitForMarker(primary, clusters.replicas);
      await r2.stopServer('fast');
      for (let i = 0; i < 5; i++) await writeLots(primary);
      await eventually(
        async () => sidecar.logEvent('replica-stale', { replica: 'replica2' }) !== undefined,
        'replica2 to be marked stale',
      );
      // The slot moves on past replica2's position once it no longer holds it.
      await waitForMarker(primary, [r1]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
    await r2.startServer();

    // Restarted with replica2 reachable again (far behind the slot), and the first reads of the
    // slot's position failing: replica2 must not become the resume point.
    sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_FAULT: 'slot-read:3:fail',
    });
    try {
      await writeLots(primary);
      await waitForMarker(primary, [r1]);
      await expectIdentical(primary, [r1], ['t', 'marker']);
      await sidecar.untilEvent('resume-unchecked');
      const status = await readStatus(postgresCluster(), loadConfig(clusters.configFile));
      expect(status.replicas.find((r) => r.name === 'replica2')?.state).toBe('stale');
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
