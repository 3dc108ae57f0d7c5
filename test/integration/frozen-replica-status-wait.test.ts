import { describe, expect, it } from 'vitest';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { frozenDuring, HANG_MS, lockTable, useTwoReplicas } from '../support/frozen-replica.js';
import { lockstep } from '../support/lockstep-process.js';

const clusters = useTwoReplicas();
const { replicasOf } = clusters;

describe('status and wait with a node frozen (SIGSTOP) while they read it', () => {
  it('status --json reports the frozen replica unreachable and the other as usual (exit 3)', async () => {
    const [r1] = replicasOf();
    const run = await frozenDuring(r1, ['status', '--config', clusters.configFile, '--json']);
    expect(run.code, run.output).toBe(3);
    const status = JSON.parse(run.stdout) as LockstepStatus;
    expect(status.primary).toMatchObject({ reachable: true, error: null });
    const [frozen, other] = status.replicas;
    expect(frozen).toMatchObject({ name: 'replica1', reachable: false, version: null });
    expect(frozen?.state).toMatch(/^(unresponsive|stale|resyncing)$/);
    expect(frozen?.error).toMatch(
      /^\[replica1\] status's reads got no answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the node's server runs/,
    );
    expect(other).toMatchObject({
      name: 'replica2',
      reachable: true,
      version: status.primary.version,
    });
    expect(Object.keys(frozen ?? {}).sort()).toEqual(Object.keys(other ?? {}).sort());
  }, 120_000);

  it('status --json reports a frozen primary unreachable and still reads the replicas (exit 3)', async () => {
    const args = ['status', '--config', clusters.configFile, '--json'];
    const run = await frozenDuring(clusters.primary, args, 'lockstep.streams');
    expect(run.code, run.output).toBe(3);
    const status = JSON.parse(run.stdout) as LockstepStatus;
    expect(status.primary).toMatchObject({ reachable: false, version: null });
    expect(status.primary.error).toMatch(
      /^\[primary\] status's reads got no answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: /,
    );
    for (const replica of status.replicas)
      expect(replica).toMatchObject({ reachable: true, version: expect.any(Number) });
  }, 120_000);

  it('wait --timeout ends past its timeout naming the frozen replica behind (exit 1)', async () => {
    const [r1] = replicasOf();
    const args = ['wait', '--config', clusters.configFile, '--version', '0', '--timeout', '2'];
    const run = await frozenDuring(r1, args);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(
      /timed out after 2 s waiting for version 0; behind: replica1 \(position unknown\)\n/,
    );
    expect(run.output).not.toMatch(/replica2/);
  }, 120_000);
});

describe('status with a live node whose control table another session locks', () => {
  it('status --json does not call a replica waiting on a lock of its position table not attached', async () => {
    const [r1] = replicasOf();
    const release = await lockTable(r1);
    try {
      const run = await lockstep(
        ['status', '--config', clusters.configFile, '--json'],
        {},
        HANG_MS,
      );
      const status = JSON.parse(run.stdout) as LockstepStatus;
      const [locked] = status.replicas;
      expect(locked?.state, run.output).not.toBe('not-attached');
      expect(locked?.error ?? '', run.output).toMatch(/lock/);
    } finally {
      await release();
    }
  }, 120_000);

  it('status --json does not call a primary waiting on a lock of its streams table not attached', async () => {
    const release = await lockTable(clusters.primary, 'lockstep.streams');
    try {
      const run = await lockstep(
        ['status', '--config', clusters.configFile, '--json'],
        {},
        HANG_MS,
      );
      const status = JSON.parse(run.stdout) as LockstepStatus;
      expect(status.primary.error ?? '', run.output).not.toMatch(
        /not attached|run lockstep attach/,
      );
      expect(status.primary.error ?? '', run.output).toMatch(/lock/);
    } finally {
      await release();
    }
  }, 120_000);
});
