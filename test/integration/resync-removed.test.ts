import { describe, expect, it } from 'vitest';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { lagWriter, RESYNC_EXTRA, RESYNC_SCHEMA } from '../support/lag-writer.js';
import { LockstepProcess, rewriteConfig, writeConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A tiny lag limit, so a replica down for a moment is already "too far behind".
const SCHEMA = RESYNC_SCHEMA;
const EXTRA = RESYNC_EXTRA;
const clusters = useAttached({ replicas: 2, schema: SCHEMA, config: EXTRA });
const writeLots = lagWriter(() => clusters.primary);

/** When each table was last copied to the replica (its synced_tables rows). */
async function copiedAt(replica: (typeof clusters.replicas)[number]): Promise<string> {
  const rows = await replica.query<{ t: string }>(
    `SELECT string_agg(table_name || '@' || copied_at::text, ',' ORDER BY table_name) AS t
       FROM lockstep.synced_tables`,
  );
  return rows[0]?.t ?? '';
}

describe('a stale replica removed while resync: "auto" copies it', () => {
  it('ends its resync: nothing is copied into it once it is back', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    const config = writeConfig(primary, [r1, r2], EXTRA);
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await writeLots();
      await waitForMarker(primary, [r1, r2]);
      const copiedBefore = await copiedAt(r2);
      await r2.stopServer('immediate');
      for (let i = 0; i < 3; i++) await writeLots();
      // Stale, and its automatic resync fails while the server is down: it keeps retrying.
      await eventually(
        async () => sidecar.logEvent('resync-failed', { replica: r2.name }) !== undefined,
        'the resync of the stopped replica to fail and retry',
      );

      rewriteConfig(config.file, primary, [r1], EXTRA);
      await eventually(
        async () => sidecar.logEvent('resync-cancelled', { replica: r2.name }) !== undefined,
        'the resync to end with the replica removed',
      );

      // Back up: a resync still running would copy it at its next attempt (backoff ≤ 30 s).
      await r2.startServer();
      await writeLots();
      await waitForMarker(primary, [r1]);
      await new Promise((r) => setTimeout(r, 3_000));
      expect(sidecar.logEvent('replica-resynced', { replica: r2.name })).toBeUndefined();
      // No attempt after the cancel.
      const lines = sidecar.logLines();
      const cancelledAt = lines.findIndex((l) => l.event === 'resync-cancelled');
      const attemptsAfter = lines
        .slice(cancelledAt + 1)
        .filter((l) => l.event === 'resync-failed' && l.replica === r2.name);
      expect(attemptsAfter).toEqual([]);
      expect(await copiedAt(r2)).toBe(copiedBefore);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
      config.remove();
    }
  });
});
