import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import {
  CONTROL_TIMEOUT_MS,
  frozenDuring,
  lockTable,
  useTwoReplicas,
} from '../support/frozen-replica.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';

// Inside the round of migrate and exec, past the checks: the primary frozen (SIGSTOP) while it
// commits the barrier (after its PREPARE), a replica frozen while its position is read (the
// primary prepared), and with bus the primary frozen while the stream's epoch is read.
const clusters = useTwoReplicas({ controlTimeoutMs: CONTROL_TIMEOUT_MS });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrate-frozen-round-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Far beyond applyTimeoutMs, a phase-two query's deadline and a session's close; far below the vote timeout. */
const ROUND_HANG_MS = 120_000;

const config = () => ['--config', clusters.configFile];
const nodes = () => [clusters.primary, ...clusters.replicas];
const nulled = () => clusters.primary.query('SELECT 1 FROM items WHERE v IS NULL');

/** Whether the process is stopped (SIGSTOP): its state in /proc is T. */
const stopped = (p: LockstepProcess) =>
  readFileSync(`/proc/${p.child.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true;

/** Runs `p` to its end; one still running after ROUND_HANG_MS hangs: it is stopped, and says so. */
async function ended(p: LockstepProcess): Promise<number | null> {
  const hung = setTimeout(() => {
    p.output += `\n[test: still running after ${ROUND_HANG_MS} ms: sent SIGKILL]\n`;
    p.kill('SIGKILL');
  }, ROUND_HANG_MS);
  try {
    return await p.closed;
  } finally {
    clearTimeout(hung);
  }
}

/** After `lockstep recover` (the thawed nodes answer): no lockstep gid prepared anywhere. */
async function recoveredClean(): Promise<void> {
  const recover = await lockstep(['recover', ...config()]);
  expect(recover.code, recover.output).toBe(0);
  expect(await preparedGids(nodes())).toEqual([]);
}

describe('migrate and exec with a node frozen inside the round', () => {
  it('exec with the primary frozen at the barrier, after it prepared: exit 3, fix recover', async () => {
    const { primary } = clusters;
    const exec = new LockstepProcess(['exec', ...config(), '--sql', 'UPDATE items SET v = NULL'], {
      LOCKSTEP_FAULT: 'barrier:1:stop',
    });
    let code: number | null;
    try {
      await eventually(async () => stopped(exec), 'exec to stop with its barrier session open');
      await primary.freezeServer();
      try {
        exec.kill('SIGCONT');
        code = await ended(exec);
      } finally {
        await primary.thawServer();
      }
    } finally {
      exec.kill('SIGKILL');
    }
    expect(code, exec.output).toBe(3);
    expect(exec.output).toMatch(
      /\[primary\] committing the barrier of \S+ after the migration prepared on the primary \(nothing decided: no node commits it\) failed: the primary did not answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the primary's server runs and answers .*then run lockstep recover \(it rolls back what the migration left prepared there\), then run this again/,
    );
    expect(exec.output).not.toMatch(/executed|nothing changed/);
    // Decided nowhere: the rollback the frozen primary read late, or recover, ends it.
    await recoveredClean();
    expect(await nulled()).toEqual([]);
  }, 240_000);

  it('migrate with a replica frozen while its position is read: exit 3, nothing prepared', async () => {
    const [replica1] = clusters.replicasOf();
    writeFileSync(path.join(dir, '001-c.sql'), 'ALTER TABLE items ADD COLUMN c int;');
    // No sidecar runs: the replicas never reach the barrier, their positions are read on and on.
    const migrate = new LockstepProcess(['migrate', 'up', ...config(), '--dir', dir]);
    let release = async (): Promise<void> => undefined;
    let code: number | null;
    try {
      await eventually(
        async () => (await preparedGids([clusters.primary])).length > 0,
        'the migration prepared on the primary',
      );
      release = await lockTable(replica1, 'lockstep.applied');
      const waits = `SELECT 1 FROM pg_stat_activity WHERE application_name = 'lockstep-migrate-session' AND wait_event_type = 'Lock'`;
      await eventually(
        async () => (await replica1.query(waits)).length > 0,
        'the position read of replica1 to wait',
      );
      await replica1.freezeServer();
      try {
        code = await ended(migrate);
      } finally {
        await replica1.thawServer();
      }
    } finally {
      migrate.kill('SIGKILL');
      await release();
    }
    expect(code, migrate.output).toBe(3);
    expect(migrate.output).toMatch(/001-c: refused — nothing changed on any node/);
    expect(migrate.output).toMatch(
      /\[replica1\] reading how far replica1 applied the stream \(to the migration's barrier; nothing prepared there\) failed: the replica did not answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the replica's server runs and answers .*then run this again/,
    );
    // The round rolled the primary's prepared migration back.
    expect(await preparedGids([clusters.primary])).toEqual([]);
    expect(await clusters.primary.query('SELECT name FROM lockstep.migrations')).toEqual([]);
    await recoveredClean();
  }, 240_000);

  it('exec with bus and the primary frozen while the epoch is read: exit 3, nothing prepared', async () => {
    // The bus is never reached: the epoch is read first.
    const bus = writeConfig(clusters.primary, clusters.replicasOf(), {
      applyTimeoutMs: 3_000,
      controlTimeoutMs: CONTROL_TIMEOUT_MS,
      bus: { url: 'nats://127.0.0.1:1' },
    });
    try {
      const exec = ['exec', '--config', bus.file, '--sql', 'UPDATE items SET v = NULL'];
      const frozen = await frozenDuring(clusters.primary, exec, 'lockstep.streams');
      expect(frozen.code, frozen.output).toBe(3);
      expect(frozen.output).toMatch(
        /\[primary\] reading the epoch of stream "lockstep" \(lockstep\.streams\) \(nothing prepared yet\) failed: the primary did not answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the primary's server runs and answers .*then run this again/,
      );
      await recoveredClean();
      expect(await nulled()).toEqual([]);
    } finally {
      bus.remove();
    }
  }, 240_000);
});
