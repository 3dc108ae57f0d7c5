import { describe, expect, it } from 'vitest';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });
const command = (name: string, ...rest: string[]) =>
  lockstep([name, '--config', clusters.configFile, ...rest]);
const status = async () => JSON.parse((await command('status', '--json')).output) as LockstepStatus;

/** Writes WAL on a table lockstep does not replicate, with checkpoints, until the slot is invalidated. */
async function loseSlot(): Promise<void> {
  const { primary } = clusters;
  await primary.query("ALTER SYSTEM SET max_slot_wal_keep_size = '8MB'");
  await primary.query('SELECT pg_reload_conf()');
  await primary.query(
    'CREATE SCHEMA IF NOT EXISTS other; CREATE TABLE IF NOT EXISTS other.noise (filler text)',
  );
  await eventually(async () => {
    await primary.query(
      'INSERT INTO other.noise SELECT repeat(md5(g::text), 30) FROM generate_series(1, 10000) g',
    );
    await primary.query('SELECT pg_switch_wal()');
    await primary.query('CHECKPOINT');
    const [slot] = await primary.query<{ wal_status: string }>(
      "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lockstep'",
    );
    return slot?.wal_status === 'lost';
  }, 'the slot to be invalidated');
  await primary.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
  await primary.query('SELECT pg_reload_conf()');
}

describe('a replication slot invalidated while lockstep is paused', () => {
  it('is reported as lost (never as streaming), and attach --resync all brings every replica back', async () => {
    const { primary } = clusters;
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await insertNumbered(primary, 1, 100);
      await eventually(
        async () => (await status()).replicas.every((r) => r.version !== null && r.version >= 1),
        'the first rows on every replica',
      );
      expect((await command('pause')).code).toBe(0);
      await insertNumbered(primary, 101, 100); // on no replica: its WAL is about to go
      await loseSlot();
      expect((await command('resume')).code).toBe(0);

      // Seen as lost by status (read from the primary) and by the sidecar, which stands by.
      const lost = await status();
      expect(lost.slot).toMatchObject({
        name: 'lockstep',
        exists: true,
        walStatus: 'lost',
        lost: true,
      });
      expect(lost.slot?.fix).toMatch(/attach --resync all/);
      expect(lost.replicas.map((r) => r.state)).toEqual(['stale', 'stale']);
      expect((await command('status')).code).toBe(1);
      await eventually(
        async () =>
          sidecar.logEvent('slot-lost', { slot: 'lockstep', reason: /was invalidated/ }) !==
          undefined,
        'the sidecar to report the lost slot',
      );

      // A plain attach does not call it attached.
      const plain = await command('attach');
      expect(plain.code).toBe(1);
      expect(plain.output).toMatch(/was invalidated[\s\S]*attach --resync all/);

      // It leaves the coordinator lock free for the way back.
      await eventually(async () => !(await status()).sidecar.running, 'the sidecar to stand by');

      // One command, with the sidecar still running: a new slot and fresh copies.
      const again = await command('attach', '--resync', 'all');
      expect(again.code, again.output).toBe(0);
      expect(again.output).toMatch(/attached:/);
      await insertNumbered(primary, 201, 20);
      await eventually(async () => {
        const s = await status();
        // The 20 rows written since are 20 packets of the new stream.
        return (
          s.slot?.lost === false &&
          s.replicas.every((r) => (r.version ?? 0) >= 20 && r.lagVersions === 0)
        );
      }, 'every replica streaming again');
      await expectIdentical(primary, clusters.replicas, ['t', 'marker']);
      expect(await preparedGids(clusters.replicas)).toEqual([]);
      const after = await status();
      expect(after.replicas.map((r) => r.state)).toEqual(['streaming', 'streaming']);
      // The new stream's head, not the old one's 100 versions: nobody looks behind.
      expect(after.primary.version).toBeLessThan(100);
      expect(after.replicas.map((r) => r.lagVersions)).toEqual([0, 0]);
      expect((await command('status')).code).toBe(0);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
