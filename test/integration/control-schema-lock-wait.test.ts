import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { holdInTransaction } from '../support/frozen-replica.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';
import { mostWaitingAtOnce, waitingOnLock } from '../support/waiting-sessions.js';

const clusters = useClusters({ replicas: 1 });

const controlSchemaExists = async (node: PostgresCluster) =>
  (await node.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'`)).length === 1;

// Creating or upgrading the control schema waits on locks (the creators' advisory lock, control
// tables in use). A lock wait is named and retried, not taken for a primary that does not
// answer, and no backend is left waiting (then acting) after its process stopped waiting for it.
describe('the control schema while a lock it needs is held on the primary', () => {
  it('run names the lock wait, leaves no backend waiting on, and creates the schema once it is free', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 5_000 });
    const creator = await holdInTransaction(
      clusters.primary,
      `SELECT pg_advisory_xact_lock(hashtext('lockstep.control-schema'))`,
    );
    const run = new LockstepProcess(['run', '--config', config.file]);
    try {
      const wait = await run.untilEvent('lock-wait', { node: 'primary' }, 30_000);
      expect(String(wait.err)).toMatch(/lock timeout/);
      expect(String(wait.fix)).toMatch(/pg_locks/);
      expect(run.events('primary-unreachable')).toEqual([]);

      // Each attempt is a new session: at most one may be waiting, however many were made.
      const most = await mostWaitingAtOnce(clusters.primary, 'lockstep-control', 2);
      expect(most).toBeLessThanOrEqual(1);
      expect(await controlSchemaExists(clusters.primary)).toBe(false);

      await creator.release();
      await eventually(
        () => controlSchemaExists(clusters.primary),
        'the control schema created once the lock is free',
      );
      expect(await waitingOnLock(clusters.primary, 'lockstep-control')).toEqual([]);
      expect(run.events('primary-unreachable')).toEqual([]);
    } finally {
      await creator.release();
      run.kill('SIGTERM');
      expect(await run.closed).toBe(0);
      config.remove();
    }
  });
});
