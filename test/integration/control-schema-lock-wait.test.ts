import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { migrateControlSchema } from '../../adapters/postgres/control/control-schema.js';
import { eventually } from '../support/compare-nodes.js';
import { holdInTransaction } from '../support/frozen-replica.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';
import { mostWaitingAtOnce, waitingOnLock } from '../support/waiting-sessions.js';

const clusters = useClusters({ replicas: 1 });

const migrationsApplied = async () =>
  Number(
    (
      await clusters.primary.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM lockstep.kysely_migration',
      )
    )[0]?.n,
  );

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
      expect(String(wait.err)).toMatch(
        /creating or upgrading the control schema failed: .*lock_timeout/,
      );
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

  it('an upgrade behind a control table in use waits 2 s per statement, names it, and upgrades once it is free', async () => {
    await migrateControlSchema('primary', clusters.primary.url, 30_000);
    // One migration behind: 010 adds a column to lockstep.synced_tables, 011 a table.
    await clusters.primary.query(`
      ALTER TABLE lockstep.synced_tables DROP COLUMN foreign_keys_checked;
      DROP TABLE lockstep.migration_gids;
      DELETE FROM lockstep.kysely_migration WHERE name IN ('010-foreign-key-checks', '011-migration-gids')`);
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 5_000 });
    const reader = await holdInTransaction(
      clusters.primary,
      'LOCK TABLE lockstep.synced_tables IN ACCESS SHARE MODE',
    );
    const run = new LockstepProcess(['run', '--config', config.file]);
    try {
      // Kysely's migrator sets lock_timeout to an hour for the transaction: the deadline, not
      // the server, would end the wait then, and the primary would be called unreachable.
      const wait = await run.untilEvent('lock-wait', { node: 'primary' }, 30_000);
      expect(String(wait.err)).toMatch(
        /creating or upgrading the control schema failed: .*lock_timeout/,
      );
      expect(run.events('primary-unreachable')).toEqual([]);
      expect(await migrationsApplied()).toBe(9);

      await reader.release();
      await eventually(
        async () => (await migrationsApplied()) === 11,
        'the upgrade once the table is free',
      );
      expect(run.events('primary-unreachable')).toEqual([]);
    } finally {
      await reader.release();
      run.kill('SIGTERM');
      expect(await run.closed).toBe(0);
      config.remove();
    }
  });
});
