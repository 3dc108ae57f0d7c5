import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { lagWriter, RESYNC_EXTRA, RESYNC_SCHEMA } from '../support/lag-writer.js';
import { LockstepProcess, rewriteConfig, writeConfig } from '../support/lockstep-process.js';
import { otherDatabase } from '../support/other-database.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = RESYNC_SCHEMA;
// A long apply bound, so the resync waits on the test's lock instead of giving up.
const EXTRA = { ...RESYNC_EXTRA, applyTimeoutMs: 120_000 };
const clusters = useAttached({ replicas: 2, schema: SCHEMA, config: EXTRA });
const writeLots = lagWriter(() => clusters.primary);

describe('a replica whose URL changes while resync: "auto" copies its old database', () => {
  it('ends that resync: nothing more is copied into the database it no longer names', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    // Where r2's URL will point: another database of its server, with the schema, never attached.
    const moved = await otherDatabase(r2, 'moved_here');
    await moved.query(SCHEMA);
    const config = writeConfig(primary, [r1, r2], EXTRA);
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    const blocker = new pg.Client({ connectionString: r2.url });
    try {
      await writeLots();
      await waitForMarker(primary, [r1, r2]);
      await r2.stopServer('immediate');
      for (let i = 0; i < 3; i++) await writeLots();
      await eventually(
        async () => sidecar.logEvent('resync-failed', { replica: r2.name }) !== undefined,
        'the resync of the stopped replica to fail and retry',
      );
      // Back, but its table locked: the next resync attempt waits inside the copy.
      await r2.startServer();
      await blocker.connect();
      await blocker.query('BEGIN; LOCK TABLE parent IN ACCESS EXCLUSIVE MODE');
      await eventually(async () => {
        const [row] = await r2.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_locks
            WHERE NOT granted AND relation = 'parent'::regclass`,
        );
        return (row?.waiting ?? 0) > 0;
      }, 'the resync to wait on the locked table');

      const replacedAt = (await r2.query<{ now: string }>('SELECT now()::text AS now'))[0]?.now;
      rewriteConfig(config.file, primary, [r1, moved], EXTRA);
      sidecar.kill('SIGHUP');
      await eventually(
        async () => sidecar.logEvent('replica-replaced', { replica: r2.name }) !== undefined,
        'the replica to be replaced',
      );
      await blocker.query('COMMIT');
      await eventually(
        async () => sidecar.logEvent('resync-cancelled', { replica: r2.name }) !== undefined,
        'the resync of the old database to end',
      );
      // The old database was not copied into after the replace.
      const [copied] = await r2.query<{ after: number }>(
        `SELECT count(*)::int AS after FROM lockstep.synced_tables WHERE copied_at > $1::timestamptz`,
        [replacedAt],
      );
      expect(copied?.after).toBe(0);
      expect(sidecar.logEvent('replica-resynced', { replica: r2.name })).toBeUndefined();
      // The others apply throughout.
      await writeLots();
      await waitForMarker(primary, [r1]);
    } finally {
      await blocker.end().catch(() => undefined);
      sidecar.kill('SIGTERM');
      await sidecar.exited;
      config.remove();
    }
  });
});
