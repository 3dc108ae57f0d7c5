import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import {
  APPLY_TIMEOUT_MS,
  frozenDuring,
  lockTable,
  useTwoReplicas,
} from '../support/frozen-replica.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';

/** Far past applyTimeoutMs (3 s) and wait's timeouts, short of connect_timeout (30 s): a command still running then hangs. */
const COMMAND_CAP_MS = 20_000;

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

  it('wait --timeout ends past its timeout naming the frozen replica as not answering (exit 1)', async () => {
    const [r1] = replicasOf();
    const args = ['wait', '--config', clusters.configFile, '--version', '0', '--timeout', '2'];
    const run = await frozenDuring(r1, args);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(
      /timed out after 2 s waiting for version 0; did not answer: replica1\n/,
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
        COMMAND_CAP_MS,
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
        COMMAND_CAP_MS,
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

/** `url` with libpq's connect_timeout: longer than a command may take with a frozen node. */
const slowConnect = (url: string) => `${url}${url.includes('?') ? '&' : '?'}connect_timeout=30`;

/**
 * Runs lockstep `args` (`{config}` is the configuration, whose nodes have
 * connect_timeout 30 s) with `node` frozen (SIGSTOP) before the command connects.
 */
async function frozenBefore(node: PostgresCluster, args: string[]) {
  const config = writeConfig(clusters.primary, clusters.replicas, {
    applyTimeoutMs: APPLY_TIMEOUT_MS,
    primary: slowConnect(clusters.primary.url),
    replicas: clusters.replicas.map((r) => ({ name: r.name, url: slowConnect(r.url) })),
  });
  await node.freezeServer();
  try {
    return await lockstep([...args, '--config', config.file], {}, COMMAND_CAP_MS);
  } finally {
    await node.thawServer();
    config.remove();
  }
}

describe('status and wait with a node frozen (SIGSTOP) before they connect to it', () => {
  it('status --json ends within applyTimeoutMs, not connect_timeout, and reports the frozen replica unreachable (exit 3)', async () => {
    const [r1] = replicasOf();
    const run = await frozenBefore(r1, ['status', '--json']);
    expect(run.output).not.toMatch(/still running after/);
    expect(run.code, run.output).toBe(3);
    const status = JSON.parse(run.stdout) as LockstepStatus;
    expect(status.replicas[0]).toMatchObject({ name: 'replica1', reachable: false });
  }, 120_000);

  it('wait --lsn --timeout 2 with the primary frozen ends, naming who is behind (exit 1)', async () => {
    const [r1] = replicasOf();
    const [row] = await r1.query<{ lsn: string }>(
      "SELECT (lsn + 1000000)::text AS lsn FROM lockstep.applied WHERE stream = 'lockstep'",
    );
    const args = ['wait', '--lsn', row?.lsn ?? '', '--timeout', '2'];
    const run = await frozenBefore(clusters.primary, args);
    expect(run.output).not.toMatch(/still running after/);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/timed out after 2 s waiting for lsn/);
  }, 120_000);
});
