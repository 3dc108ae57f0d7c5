import { describe, expect, it } from 'vitest';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { streamCommands } from '../support/stream-commands.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });
const write = (from: number, n: number) => insertNumbered(clusters.primary, from, n);
const { command, status, slotActive } = streamCommands(clusters);

describe('lockstep pause and resume', () => {
  it('refuses a stream that is not attached, naming the fix', async () => {
    const other = writeConfig(clusters.primary, clusters.replicas, { slot: 'other' });
    try {
      const paused = await lockstep(['pause', '--config', other.file]);
      expect(paused.output).toMatch(
        /\[primary\] not attached: no stream "other" on the primary\n\s+fix: run lockstep attach first/,
      );
      expect(paused.code).toBe(1);
    } finally {
      other.remove();
    }
  });

  it('stops the stream with replicas still connected, stays paused across a restart, and resumes where the replicas are', async () => {
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await write(1, 5);
      await eventually(
        async () =>
          (await Promise.all(clusters.replicas.map(appliedVersion))).every((v) => v === 5),
        'both replicas at version 5',
      );

      const paused = await command('pause');
      expect(paused.output).toMatch(/^paused since \S+: the sidecar stopped streaming/);
      expect(paused.code).toBe(0);
      // pause returns once the slot is let go: from here on nothing reaches a replica.
      expect(await slotActive()).toBe(false);
      await write(6, 10);
      await eventually(async () => {
        const s = await status();
        return (
          s.paused &&
          s.replicas.every(
            (r) =>
              r.state === 'paused' &&
              r.version === 5 &&
              r.lagVersions === null &&
              r.lagSeconds === null &&
              (r.lagBytes ?? 0) > 0,
          )
        );
      }, 'status to show both replicas paused at version 5, lag in versions unknown, in bytes not');
      await sidecar.untilEvent('replication-paused');
      expect((await command('status')).output).toMatch(
        /^replication: paused since \S+ \(lockstep resume/m,
      );
      // The replicas' connections stay open while paused (only the stream ends).
      for (const replica of clusters.replicas) {
        const sessions = await replica.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name LIKE 'lockstep-apply-%'",
        );
        expect(Number(sessions[0]?.n)).toBe(1);
      }

      // A round needs the replicas to catch up, which they cannot while paused: refused up front.
      const exec = await command('exec', '--sql', 'CREATE TABLE never (id int PRIMARY KEY)');
      expect(exec.output).toMatch(/is paused .*\n\s+fix: run lockstep resume/);
      expect(exec.code).toBe(1);

      // A sidecar started while paused stays paused.
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(
        async () => sidecar.logEvent('replication-paused') !== undefined,
        'the new sidecar to find the stream paused',
      );
      await eventually(
        async () => (await status()).sidecar.running,
        'the new sidecar to be active',
      );
      expect(await slotActive()).toBe(false);
      for (const replica of clusters.replicas) expect(await appliedVersion(replica)).toBe(5);

      const resumed = await command('resume');
      expect(resumed.output).toMatch(/^resumed: the sidecar streams again/);
      expect(resumed.code).toBe(0);
      await eventually(
        async () =>
          (await Promise.all(clusters.replicas.map(appliedVersion))).every((v) => v === 15),
        'both replicas at version 15',
      );
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      const after = await status();
      expect(after.paused).toBe(false);
      expect(after.pausedSince).toBeNull();
      expect((await command('resume')).output).toMatch(/^not paused: nothing to resume/);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('a pause in the middle of a large transaction loses nothing and doubles nothing', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      const before = await appliedVersion(clusters.replicas[0] as (typeof clusters.replicas)[0]);
      await eventually(async () => (await status()).sidecar.running, 'the sidecar to be active');
      await clusters.primary.query(
        'INSERT INTO t SELECT g, g FROM generate_series(1000000, 1299999) g',
      );
      // Paused while the 300,000 rows stream through the replicas' open transactions.
      expect((await command('pause')).code).toBe(0);
      for (const replica of clusters.replicas) {
        const version = await appliedVersion(replica);
        expect([before, before + 1]).toContain(version);
        const rows = await replica.query<{ n: string }>(
          'SELECT count(*)::text AS n FROM t WHERE id >= 1000000',
        );
        // All of it or none of it: the transaction is applied whole or not at all.
        expect(Number(rows[0]?.n)).toBe(version === before ? 0 : 300_000);
        expect(await preparedGids([replica])).toEqual([]);
      }
      expect((await command('resume')).code).toBe(0);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('upgrades a control schema from before pause; status reads such a schema as running', async () => {
    // A schema from before pause is also from before fencing (005), control events (006),
    // replica databases (007), join holds (008) and recorded stream tables (009).
    await clusters.primary.query(`ALTER TABLE lockstep.streams DROP COLUMN paused_at;
      ALTER TABLE lockstep.streams DROP COLUMN epoch;
      ALTER TABLE lockstep.decisions DROP COLUMN epoch;
      ALTER TABLE lockstep.replica_status DROP COLUMN stale_since;
      ALTER PUBLICATION lockstep DROP TABLE lockstep.control_events;
      DROP TABLE lockstep.control_events;
      ALTER TABLE lockstep.replica_status DROP COLUMN database_id;
      DROP TABLE lockstep.join_holds;
      ALTER TABLE lockstep.streams DROP COLUMN tables, DROP COLUMN capture_ddl;
      ALTER TABLE lockstep.synced_tables DROP COLUMN foreign_keys_checked;
      DROP TABLE lockstep.migration_gids;
      DELETE FROM lockstep.kysely_migration
       WHERE name IN ('004-stream-pause', '005-fencing', '006-control-events',
                      '007-replica-database', '008-join-holds', '009-stream-tables',
                      '010-foreign-key-checks', '011-migration-gids')`);
    const before = await status();
    expect(before.primary.error).toBeNull();
    expect(before.paused).toBe(false);

    const paused = await command('pause');
    expect(paused.output).toMatch(/^paused since \S+: no sidecar runs now/);
    expect(paused.code).toBe(0);
    expect((await status()).paused).toBe(true);
    expect((await command('resume')).output).toMatch(/^resumed: no sidecar runs now/);
    expect((await status()).paused).toBe(false);
  });
});
