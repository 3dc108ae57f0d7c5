import { describe, expect, it } from 'vitest';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { criticalSetup, CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import { holdStreamRow } from '../support/hold-stream-row.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { mostWaitingAtOnce, waitingOnLock } from '../support/waiting-sessions.js';

const clusters = useAttached({
  ...criticalSetup(),
  config: { ...criticalSetup().config, controlTimeoutMs: 5_000 },
});

// A decision reads the stream's row under a share lock; a session holding the row (a frozen
// `lockstep pause`) must not leave one waiting backend per attempt behind the coordinator.
describe("a round's decision while the stream's row is held on the primary", () => {
  it('names the lock wait, leaves no backend waiting on, and settles once the row is free', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let release: (() => Promise<void>) | null = null;
    try {
      await sidecar.untilEvent('sidecar-active', {}, 30_000);
      release = await holdStreamRow(clusters.primary);
      await clusters.primary.query('INSERT INTO accounts VALUES (1, 10)');

      const failed = await sidecar.untilEvent(
        'decision-write-failed',
        { attempt: 'commit' },
        30_000,
      );
      expect(failed).toMatchObject({ node: 'primary' });
      expect(String(failed.err)).toMatch(/lock timeout/);
      expect(String(failed.fix)).toMatch(/lockstep\.streams.*pg_locks/);
      // The attempts that settle it say so too, each time.
      await sidecar.untilEvent(
        'decision-write-failed',
        { attempt: 'abort', fix: /pg_locks/ },
        30_000,
      );

      // Each attempt (the commit, then the aborts that settle it) is a new session: at most
      // one of them may be waiting at any time, however many have been made.
      const most = await mostWaitingAtOnce(clusters.primary, 'lockstep-decisions', 3);
      expect(most).toBeLessThanOrEqual(1);
      expect(await preparedGids(clusters.replicas)).not.toEqual([]);

      await release();
      await eventually(
        async () => (await preparedGids([clusters.primary, ...clusters.replicas])).length === 0,
        'no gid left prepared once the row is free',
      );
      await eventually(
        async () =>
          (
            await Promise.all(clusters.replicas.map((r) => r.query('SELECT 1 FROM accounts')))
          ).every((rows) => rows.length === 1),
        'the critical write on both replicas in a later round',
      );
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      expect(await waitingOnLock(clusters.primary, 'lockstep-decisions')).toEqual([]);
    } finally {
      await release?.();
      sidecar.kill('SIGTERM');
      expect(await sidecar.closed).toBe(0);
    }
  });
});
