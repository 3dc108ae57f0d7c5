import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, rewriteConfig } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

// A small window: the removed replica's next packets leave memory quickly.
const EXTRA = { windowChanges: 200, batch: { maxRows: 50 } };
const clusters = useAttached({ replicas: 3, schema: NUMBERED_SCHEMA, config: EXTRA });

describe('a replica removed, left behind, then put back into the configuration', () => {
  it('is marked stale, and its old position never becomes the stream start of the others', async () => {
    const { primary } = clusters;
    const [r1, r2, r3] = clusters.replicas as [PostgresCluster, PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const logged = (event: string) =>
      sidecar.logLines().some((l) => l.event === event && l.replica === r3.name);
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await insertNumbered(primary, 1, 20);
      await waitForMarker(primary, clusters.replicas);

      // replica3 leaves; the slot moves on without it, past what it holds.
      rewriteConfig(clusters.configFile, primary, [r1, r2], EXTRA);
      await eventually(async () => logged('replica-removed'), 'replica3 to be removed');
      await insertNumbered(primary, 21, 300);
      await waitForMarker(primary, [r1, r2]);

      // Back in: it needs packets the slot no longer has. A rewind to its position would
      // number the stream from there, and the others would skip real transactions.
      rewriteConfig(clusters.configFile, primary, [r1, r2, r3], EXTRA);
      await eventually(async () => logged('replica-added'), 'replica3 to be added again');
      await eventually(
        async () => sidecar.logEvent('replica-stale', { replica: r3.name }) !== undefined,
        'replica3 to be marked stale',
      );
      await insertNumbered(primary, 321, 50);
      await waitForMarker(primary, [r1, r2]);
      await expectIdentical(primary, [r1, r2], ['t', 'marker']);
      const [row] = await r3.query<{ n: string }>('SELECT count(*)::text AS n FROM t');
      expect(Number(row?.n)).toBeLessThan(370);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('removed while no sidecar runs: the next one forgets it and says its gids were not checked', async () => {
    const { primary } = clusters;
    const [r1, r2, r3] = clusters.replicas as [PostgresCluster, PostgresCluster, PostgresCluster];
    const statusRows = async () =>
      (
        await primary.query<{ replica: string }>(
          'SELECT replica FROM lockstep.replica_status ORDER BY 1',
        )
      ).map((r) => r.replica);
    expect(await statusRows()).toContain(r3.name);
    rewriteConfig(clusters.configFile, primary, [r1, r2], EXTRA);
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(
        async () => sidecar.logLines().some((l) => l.event === 'replicas-forgotten'),
        'the sidecar to forget replica3',
      );
      const [forgotten] = sidecar.logLines().filter((l) => l.event === 'replicas-forgotten');
      expect(forgotten?.replicas).toEqual([r3.name]);
      expect(forgotten?.fix).toEqual(expect.stringContaining('pg_prepared_xacts'));
      expect(await statusRows()).not.toContain(r3.name);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
