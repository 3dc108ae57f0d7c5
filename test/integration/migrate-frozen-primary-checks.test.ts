import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { frozenDuring, HANG_MS, useTwoReplicas } from '../support/frozen-replica.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';

// Before anything is prepared, migrate and exec read on the primary whether the stream is paused
// and which replicas it serves. The primary is frozen (SIGSTOP) while one of those reads waits.
const clusters = useTwoReplicas();
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrate-frozen-checks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error of a check on the primary that got no answer (applyTimeoutMs 3 s in these tests). */
const unanswered = (step: string) =>
  new RegExp(
    `\\[primary\\] ${step} \\(nothing prepared yet\\) failed: the primary did not answer for 3000 ms \\(applyTimeoutMs\\)\\n {2}fix: check that the primary's server runs and answers .*then run this again`,
  );

const config = () => ['--config', clusters.configFile];
const history = () => clusters.primary.query('SELECT name FROM lockstep.migrations');

describe('migrate and exec with the primary frozen in their checks', () => {
  it('migrate names the primary while reading the replicas the stream serves (exit 3); run again, it applies', async () => {
    writeFileSync(path.join(dir, '001-c.sql'), 'ALTER TABLE items ADD COLUMN c int;');
    const up = ['migrate', 'up', ...config(), '--dir', dir];
    const frozen = await frozenDuring(clusters.primary, up, 'lockstep.replica_status');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(
      unanswered(
        'reading the replicas stream "lockstep" serves \\(lockstep\\.replica_status, lockstep\\.join_holds\\)',
      ),
    );
    expect(await history()).toEqual([]);

    // A round needs the replicas to apply the stream: a sidecar runs for the rerun.
    const sidecar = new LockstepProcess(['run', ...config()]);
    try {
      await eventually(async () => !!sidecar.logEvent('sidecar-active'), 'the sidecar active');
      const again = await lockstep(up, {}, HANG_MS);
      expect(again.code, again.output).toBe(0);
      expect(await history()).toEqual([{ name: '001-c' }]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  }, 180_000);

  it('exec names the primary while reading whether the stream is paused (exit 3)', async () => {
    const exec = ['exec', ...config(), '--sql', 'UPDATE items SET v = NULL'];
    const frozen = await frozenDuring(clusters.primary, exec, 'lockstep.streams');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(unanswered('reading whether stream "lockstep" is paused'));
    const untouched = await clusters.primary.query('SELECT 1 FROM items WHERE v IS NULL');
    expect(untouched).toEqual([]);
  }, 180_000);

  it('migrate names the primary while reading its migration history (exit 3)', async () => {
    writeFileSync(path.join(dir, '002-d.sql'), 'ALTER TABLE items ADD COLUMN d int;');
    const up = ['migrate', 'up', ...config(), '--dir', dir];
    const frozen = await frozenDuring(clusters.primary, up, 'lockstep.migrations');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(unanswered('reading the migration history'));
    expect(await history()).toEqual([{ name: '001-c' }]);
  }, 180_000);
});
