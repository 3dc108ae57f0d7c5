import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { ReplicasBehind, waitForReplicas } from '../../plugin/client/index.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { compareLsn } from '../../plugin/protocol/index.js';
import { eventually } from '../support/compare-nodes.js';
import { lockTable } from '../support/frozen-replica.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });
let sidecar: LockstepProcess;
let primary: pg.Pool;
let replicas: Record<string, pg.Pool>;

beforeAll(() => {
  sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
  primary = new pg.Pool({ connectionString: clusters.primary.url });
  replicas = Object.fromEntries(
    clusters.replicas.map((r) => [r.name, new pg.Pool({ connectionString: r.url })]),
  );
});
afterAll(async () => {
  sidecar.kill('SIGTERM');
  expect(await sidecar.exited).toBe(0);
  await Promise.all([primary, ...Object.values(replicas)].map((p) => p.end()));
});

/** The application's write: a commit on the primary, then the insert LSN read right after it. */
async function write(id: number): Promise<string> {
  await primary.query('INSERT INTO t VALUES ($1, $1)', [id]);
  const { rows } = await primary.query<{ lsn: string }>(
    'SELECT pg_current_wal_insert_lsn()::text AS lsn',
  );
  return rows[0]?.lsn as string;
}

const has = async (replica: pg.Pool, id: number) =>
  (await replica.query('SELECT 1 FROM t WHERE id = $1', [id])).rows.length !== 0;

/**
 * Holds replica1's apply back (an exclusive lock on `t`) while `during` runs,
 * so a wait that returned too early would be caught reading nothing.
 */
async function withReplica1Blocked(during: () => Promise<void>): Promise<void> {
  const blocker = new pg.Client({ connectionString: clusters.replicas[0]?.url });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
    await during();
    await blocker.query('COMMIT');
  } finally {
    await blocker.end();
  }
}

describe('read-your-writes', () => {
  it('waitForReplicas resolves once the write is readable on every replica, the primary idle after it', async () => {
    let settled = false;
    let waiting: Promise<unknown> = Promise.resolve();
    let lsn = '';
    await withReplica1Blocked(async () => {
      lsn = await write(1);
      waiting = waitForReplicas(replicas, lsn, { primary, timeoutMs: 120_000 }).finally(() => {
        settled = true;
      });
      await eventually(async () => has(replicas.replica2 as pg.Pool, 1), 'replica2 to have row 1');
      // replica1 cannot have applied it: the wait is still on.
      expect(settled).toBe(false);
    });
    const positions = (await waiting) as Array<{ name: string; lsn: string; reached: boolean }>;
    expect(await has(replicas.replica1 as pg.Pool, 1)).toBe(true);
    expect(await has(replicas.replica2 as pg.Pool, 1)).toBe(true);
    expect(positions.map((p) => [p.name, p.reached])).toEqual([
      ['replica1', true],
      ['replica2', true],
    ]);
    for (const p of positions) expect(compareLsn(p.lsn, lsn)).toBeGreaterThanOrEqual(0);
  });

  it('without the primary, an idle primary leaves nothing to reach: ReplicasBehind says where each replica is', async () => {
    const lsn = await write(2);
    await eventually(
      async () =>
        (await has(replicas.replica1 as pg.Pool, 2)) && has(replicas.replica2 as pg.Pool, 2),
      'row 2 on both replicas',
    );
    // Each replica stores its last commit's LSN, which lies before the LSN read after that commit.
    const error = await waitForReplicas(Object.values(replicas), lsn, { timeoutMs: 500 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ReplicasBehind);
    const behind = (error as ReplicasBehind).replicas;
    expect(behind.map((r) => [r.name, r.reached])).toEqual([
      ['replica1', false],
      ['replica2', false],
    ]);
    for (const r of behind) expect(compareLsn(r.lsn as string, lsn)).toBeLessThan(0);
    // A later replicated commit carries them past it.
    await write(3);
    await waitForReplicas(Object.values(replicas), lsn, { timeoutMs: 120_000 });
  });

  it('names the grant a role without access to lockstep.applied needs', async () => {
    const [r1] = clusters.replicas as [PostgresCluster];
    await r1.query('CREATE ROLE app_reader LOGIN');
    const reader = new pg.Pool({ connectionString: r1.urlFor({ user: 'app_reader' }) });
    try {
      const error = await waitForReplicas(reader, '0/1').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockstepError);
      expect(error).toMatchObject({ node: 'replica1', setting: 'privileges', sqlState: '42501' });
    } finally {
      await reader.end();
    }
  });

  it('lockstep wait --lsn exits 0 once the write is readable on the replicas, 1 on timeout', async () => {
    let wait: LockstepProcess | null = null;
    await withReplica1Blocked(async () => {
      const lsn = await write(4);
      wait = new LockstepProcess(['wait', '--config', clusters.configFile, '--lsn', lsn, '--json']);
      await eventually(async () => has(replicas.replica2 as pg.Pool, 4), 'replica2 to have row 4');
      expect(wait.child.exitCode).toBeNull();
    });
    const done = wait as unknown as LockstepProcess;
    expect(await done.closed).toBe(0);
    expect(await has(replicas.replica1 as pg.Pool, 4)).toBe(true);
    expect(JSON.parse(done.stdout)).toMatchObject({
      reached: true,
      replicas: [
        { name: 'replica1', reached: true },
        { name: 'replica2', reached: true },
      ],
    });

    const { rows } = await (replicas.replica2 as pg.Pool).query<{ version: string }>(
      'SELECT version::text FROM lockstep.applied',
    );
    const now = Number(rows[0]?.version);
    const reached = await lockstep([
      'wait',
      '--config',
      clusters.configFile,
      '--version',
      String(now),
      '--replica',
      'replica2',
      '--json',
    ]);
    expect(reached.code).toBe(0);
    // The replica may have applied a later packet meanwhile; reaching means at least `now`.
    type Reached = { name: string; version: number; reached: boolean };
    const [only, ...others] = JSON.parse(reached.stdout).replicas as Reached[];
    expect(others).toEqual([]);
    expect(only).toMatchObject({ name: 'replica2', reached: true });
    expect(only?.version).toBeGreaterThanOrEqual(now);

    const late = await lockstep([
      'wait',
      '--config',
      clusters.configFile,
      '--version',
      String(now + 1000),
      '--timeout',
      '1',
      '--json',
    ]);
    expect(late.code).toBe(1);
    expect(JSON.parse(late.stdout)).toMatchObject({
      reached: false,
      target: { version: now + 1000 },
      replicas: [
        { name: 'replica1', reached: false, version: expect.any(Number) },
        { name: 'replica2', reached: false, version: expect.any(Number) },
      ],
    });
  });

  it('lockstep wait --timeout shorter than a round trip reads caught-up replicas: reached, not behind', async () => {
    const versions = await Promise.all(
      Object.values(replicas).map(async (replica) => {
        const { rows } = await replica.query<{ version: string }>(
          'SELECT version::text FROM lockstep.applied',
        );
        return Number(rows[0]?.version);
      }),
    );
    const args = ['wait', '--config', clusters.configFile, '--timeout', '0.001'];
    const held = String(Math.min(...versions));
    const reached = await lockstep([...args, '--version', held, '--json']);
    expect(reached.code, reached.output).toBe(0);
    expect(JSON.parse(reached.stdout)).toMatchObject({
      reached: true,
      replicas: [
        { name: 'replica1', reached: true },
        { name: 'replica2', reached: true },
      ],
    });
    // Beyond what any replica holds: behind, each at the position its final read found.
    const late = await lockstep([...args, '--version', String(Math.max(...versions) + 1000)]);
    expect(late.code, late.output).toBe(1);
    expect(late.output).toMatch(
      /; behind: replica1 at version \d+ \(lsn [^)]+\), replica2 at version \d+/,
    );
    expect(late.output).not.toMatch(/position unknown|did not answer/);
  });

  it('lockstep wait --timeout beyond the longest timer is a usage error, not an instant unreachable', async () => {
    const result = await lockstep([
      'wait',
      '--config',
      clusters.configFile,
      '--version',
      '0',
      '--timeout',
      '3000000',
    ]);
    expect(result.code, result.output).toBe(2);
    expect(result.output).toMatch(/--timeout 3000000: at most \d+ s/);
  });

  it('waitForReplicas: a replica that does not answer its final read is named so, not behind', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const [row] = await r2.query<{ lsn: string }>('SELECT lsn::text AS lsn FROM lockstep.applied');
    const lsn = row?.lsn as string;
    // replica1's position table locked: its read waits there, past the wait's final read.
    const release = await lockTable(r1);
    let error: unknown;
    try {
      error = await waitForReplicas(replicas, lsn, { timeoutMs: 0 }).catch((e: unknown) => e);
    } finally {
      await release();
    }
    expect(error).toBeInstanceOf(ReplicasBehind);
    const behind = error as ReplicasBehind;
    expect(behind.unanswered).toEqual(['replica1']);
    expect(behind.replicas).toMatchObject([
      { name: 'replica1', reached: false, lsn: null },
      { name: 'replica2', reached: true },
    ]);
    expect(behind.message).toMatch(/did not answer: replica1$/);
    expect(behind.message).not.toMatch(/behind: replica1/);
  });
});
