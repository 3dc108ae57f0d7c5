import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectIdentical, rowCount } from '../support/compare-nodes.js';
import { frozenDuring, HANG_MS, useTwoReplicas } from '../support/frozen-replica.js';
import { lockstep } from '../support/lockstep-process.js';

const clusters = useTwoReplicas();
const { replicasOf } = clusters;
/** An empty migrations directory: `migrate status` only reads each node's history. */
const migrations = mkdtempSync(path.join(os.tmpdir(), 'lockstep-frozen-primary-'));
afterAll(() => rmSync(migrations, { recursive: true, force: true }));

/** The error of a step on the primary that got no answer (applyTimeoutMs 3 s in these tests). */
const unanswered = (step: string) =>
  new RegExp(
    `\\[primary\\] ${step} failed: the primary did not answer for 3000 ms \\(applyTimeoutMs\\)\\n {2}fix: check that the primary's server runs and answers`,
  );

const config = () => ['--config', clusters.configFile];
const paused = async () =>
  (
    await clusters.primary.query<{ paused: boolean }>(
      "SELECT paused_at IS NOT NULL AS paused FROM lockstep.streams WHERE stream = 'lockstep'",
    )
  )[0]?.paused;

// The primary is frozen (SIGSTOP) once the command's session waits on a control table it reads.
describe('operator commands with the primary frozen in one of their steps', () => {
  it('doctor names the frozen primary and still checks the replicas (exit 3)', async () => {
    const doctor = await frozenDuring(
      clusters.primary,
      ['doctor', ...config()],
      'lockstep.join_holds',
    );
    expect(doctor.code, doctor.output).toBe(3);
    expect(doctor.output).toMatch(
      unanswered("doctor's checks \\(settings, slot, tables, join holds\\)"),
    );
    expect(doctor.output).not.toMatch(/\[replica[12]\]/);
  }, 120_000);

  it('pause and resume name the frozen primary; run again, they finish', async () => {
    const pause = await frozenDuring(clusters.primary, ['pause', ...config()], 'lockstep.streams');
    expect(pause.code, pause.output).toBe(3);
    expect(pause.output).toMatch(
      unanswered(
        'recording the pause of stream "lockstep" in lockstep\\.streams \\(whether it was recorded is unknown\\)',
      ),
    );
    expect(pause.output).toMatch(/then run lockstep pause again/);
    const again = await lockstep(['pause', ...config()], {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect(await paused()).toBe(true);

    const resume = await frozenDuring(
      clusters.primary,
      ['resume', ...config()],
      'lockstep.streams',
    );
    expect(resume.code, resume.output).toBe(3);
    expect(resume.output).toMatch(
      unanswered(
        'recording the resume of stream "lockstep" in lockstep\\.streams \\(whether it was recorded is unknown\\)',
      ),
    );
    const resumed = await lockstep(['resume', ...config()], {}, HANG_MS);
    expect(resumed.code, resumed.output).toBe(0);
    expect(await paused()).toBe(false);
  }, 120_000);

  it('migrate status reports the frozen primary unreachable and reads the replicas (exit 3)', async () => {
    const args = ['migrate', 'status', ...config(), '--dir', migrations, '--json'];
    const run = await frozenDuring(clusters.primary, args, 'lockstep.migrations');
    expect(run.code, run.output).toBe(3);
    const status = JSON.parse(run.stdout) as {
      nodes: Array<{ name: string; reachable: boolean; error: string | null }>;
    };
    expect(status.nodes[0]).toMatchObject({ name: 'primary', reachable: false });
    expect(status.nodes[0]?.error).toMatch(unanswered('reading the migration history'));
    expect(status.nodes.slice(1)).toMatchObject([
      { name: 'replica1', reachable: true, error: null },
      { name: 'replica2', reachable: true, error: null },
    ]);
  }, 120_000);

  it('a resync names the frozen primary before it empties the replica; run again, it finishes', async () => {
    const [r1] = replicasOf();
    const resync = ['attach', ...config(), '--resync', 'replica1'];
    const frozen = await frozenDuring(clusters.primary, resync, 'lockstep.replica_status');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(
      unanswered('marking replica1 stale before its resync \\(nothing emptied yet\\)'),
    );
    expect(await rowCount(r1, 'items')).toBe(50);

    const resynced = await lockstep(resync, {}, HANG_MS);
    expect(resynced.code, resynced.output).toBe(0);
    await expectIdentical(clusters.primary, clusters.replicas, ['items']);
  }, 120_000);

  it('detach says what it did and what is left on the frozen primary; detach again finishes', async () => {
    const streams = () => clusters.primary.query('SELECT stream FROM lockstep.streams');
    const positions = () =>
      Promise.all(replicasOf().map((r) => r.query('SELECT stream FROM lockstep.applied')));
    const detach = ['detach', ...config()];
    const frozen = await frozenDuring(clusters.primary, detach, 'lockstep.replica_status');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(
      unanswered(
        "removing the stream's rows from the primary's control tables \\(detach; done: dropping the slot, dropping the publication, removing the DDL capture; left: removing the stream's rows from the primary's control tables, the replicas' positions\\)",
      ),
    );
    expect(frozen.output).toMatch(/then run lockstep detach again \(it finishes what is left\)/);
    expect(await clusters.primary.query('SELECT 1 FROM pg_replication_slots')).toEqual([]);
    expect(await streams()).toEqual([{ stream: 'lockstep' }]);
    expect(await positions()).toEqual([[{ stream: 'lockstep' }], [{ stream: 'lockstep' }]]);

    const again = await lockstep(detach, {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect(await streams()).toEqual([]);
    expect(await positions()).toEqual([[], []]);
  }, 120_000);
});
