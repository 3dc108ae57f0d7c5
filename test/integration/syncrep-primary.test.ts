import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { CONTROL_TIMEOUT_MS, useTwoReplicas } from '../support/frozen-replica.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';

// The primary answers, but its COMMITs wait for a synchronous standby that never connects.
const clusters = useTwoReplicas({ controlTimeoutMs: CONTROL_TIMEOUT_MS });
const config = () => ['--config', clusters.configFile];
const stopped = (p: LockstepProcess) =>
  readFileSync(`/proc/${p.child.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true;
const SYNC_REP_HINT = /wait_event = 'SyncRep'.*synchronous_standby_names/;

/** Sets synchronous_standby_names and waits until new sessions (forked after the reload) see it. */
async function requireStandby(primary: PostgresCluster, names: string | null): Promise<void> {
  await primary.query(
    names === null
      ? 'ALTER SYSTEM RESET synchronous_standby_names'
      : `ALTER SYSTEM SET synchronous_standby_names = '${names}'`,
  );
  await primary.query('SELECT pg_reload_conf()');
  await eventually(async () => {
    const rows = await primary.query<{ names: string }>(
      `SELECT current_setting('synchronous_standby_names') AS names`,
    );
    return rows[0]?.names === (names ?? '');
  }, 'the primary reloaded synchronous_standby_names');
}

describe('a primary whose COMMITs wait for a synchronous standby', () => {
  it('exec and recover name the primary and SyncRep (exit 3); recover finishes once lifted', async () => {
    const { primary } = clusters;
    const exec = new LockstepProcess(['exec', ...config(), '--sql', 'UPDATE items SET v = NULL'], {
      LOCKSTEP_FAULT: 'barrier:1:stop',
    });
    try {
      await eventually(async () => stopped(exec), 'exec stops at the barrier');
      await requireStandby(primary, 'nobody_here');
      exec.kill('SIGCONT');
      expect(await exec.closed).toBe(3);
      expect(exec.output).toMatch(/\[primary\] committing the barrier/);
      expect(exec.output).toMatch(SYNC_REP_HINT);
      expect(exec.output).toContain('run lockstep recover');

      const early = await lockstep(['recover', ...config()]);
      expect(early.code).toBe(3);
      expect(early.output).toMatch(/\[primary\] taking the coordinator lock of stream/);
      expect(early.output).toMatch(SYNC_REP_HINT);
    } finally {
      exec.kill('SIGKILL');
      await requireStandby(primary, null);
    }
    // The sessions left waiting on SyncRep finish once it is lifted.
    await eventually(async () => {
      const rows = await primary.query(
        `SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'`,
      );
      return rows.length === 0;
    }, 'no session waits on SyncRep');
    const recover = await lockstep(['recover', ...config()]);
    expect(recover.code).toBe(0);
    expect(await preparedGids([primary, ...clusters.replicas])).toEqual([]);
  }, 300_000);
});
