import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { appliedVersion, eventually } from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  withSidecar,
  writeConfig,
} from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-cli-'));
const configs: Array<{ remove(): void }> = [];
afterAll(() => {
  for (const c of configs) c.remove();
  rmSync(dir, { recursive: true, force: true });
});

const command = (args: string[], file = clusters.configFile) =>
  lockstep([...args, '--config', file], {}, 120_000);
const parsed = (result: { stdout: string }) => JSON.parse(result.stdout);
const statusJson = async () => {
  const result = await command(['status', '--json']);
  return { code: result.code, status: parsed(result) as LockstepStatus };
};
/** A node at a port nothing listens on. */
const closedPort = (name: string) =>
  ({ name, url: 'postgres://postgres@127.0.0.1:1/postgres' }) as PostgresCluster;
function config(primary: PostgresCluster, replicas: PostgresCluster[], extra = {}): string {
  const written = writeConfig(primary, replicas, extra);
  configs.push(written);
  return written.file;
}

/** Runs `body` while a sidecar runs, once status shows it active. */
const withActiveSidecar = (body: () => Promise<void>) =>
  withSidecar(clusters.configFile, async () => {
    await eventually(async () => (await statusJson()).status.sidecar.running, 'the sidecar to run');
    await body();
  });

describe('exit codes and --json', () => {
  it('a bad configuration or command line is exit 2, its error as JSON with --json', async () => {
    const bad = config(clusters.primary, [...clusters.replicas], { nope: 1 });
    for (const args of [
      ['status'],
      ['doctor'],
      ['pause'],
      ['recover'],
      ['wait', '--version', '1'],
    ]) {
      const text = await command(args, bad);
      expect(text.code).toBe(2);
      const json = await command([...args, '--json'], bad);
      expect(json.code).toBe(2);
      expect(parsed(json).error).toMatchObject({ node: null, code: 2 });
      expect(parsed(json).error.problem).toContain('"nope"');
    }
    const usage = [
      ['status', '--bogus'],
      ['migrate', 'sideways'],
      ['wait'],
      ['wait', '--lsn', '0/1', '--version', '3'],
      ['wait', '--lsn', 'not-an-lsn'],
      ['wait', '--version', '1', '--replica', 'nobody'],
      ['status', '--watch', '--interval', '0'],
    ];
    for (const args of usage) {
      const json = await command([...args, '--json']);
      expect({ args, code: json.code, error: parsed(json).error.code }).toEqual({
        args,
        code: 2,
        error: 2,
      });
    }
  });

  it('a node that cannot be reached is exit 3, whatever the command', async () => {
    const primaryDown = config(closedPort('primary'), [...clusters.replicas]);
    for (const args of [
      ['pause'],
      ['resume'],
      ['recover'],
      ['detach'],
      ['exec', '--sql', 'SELECT 1'],
      ['migrate', 'up', '--dir', dir],
    ]) {
      const result = await command(args, primaryDown);
      expect({ args, code: result.code }).toEqual({ args, code: 3 });
    }
    for (const args of [['pause'], ['recover'], ['detach']]) {
      const json = await command([...args, '--json'], primaryDown);
      expect(parsed(json).error).toMatchObject({ node: 'primary', setting: 'connection', code: 3 });
    }
    const status = await command(['status', '--json'], primaryDown);
    expect(status.code).toBe(3);
    expect(parsed(status).primary.reachable).toBe(false);
    const migrations = await command(['migrate', 'status', '--dir', dir, '--json'], primaryDown);
    expect(migrations.code).toBe(3);
    expect(parsed(migrations).nodes[0]).toMatchObject({ name: 'primary', reachable: false });

    const replicaDown = config(clusters.primary, [
      clusters.replicas[0] as PostgresCluster,
      closedPort('gone'),
    ]);
    const replicaStatus = await command(['status', '--json'], replicaDown);
    expect(replicaStatus.code).toBe(3);
    expect(
      parsed(replicaStatus).replicas.map((r: { name: string; reachable: boolean }) => [
        r.name,
        r.reachable,
      ]),
    ).toEqual([
      ['replica1', true],
      ['gone', false],
    ]);
    const wait = await command(['wait', '--version', '0', '--json'], replicaDown);
    expect(wait.code).toBe(3);
    expect(parsed(wait).error).toMatchObject({ node: 'gone', code: 3 });
    const doctor = await command(['doctor', '--json'], replicaDown);
    expect(doctor.code).toBe(3);
    expect(parsed(doctor).problems).toContainEqual(
      expect.objectContaining({ node: 'gone', setting: 'connection' }),
    );
    // detach cannot check that replica for prepared transactions: refused, nothing dropped.
    const detach = await command(['detach', '--json'], replicaDown);
    expect(detach.code).toBe(3);
    expect(parsed(detach).error).toMatchObject({ node: 'gone', code: 3 });
    // attach refuses (nothing changed) and says why by its exit code.
    expect((await command(['attach'], replicaDown)).code).toBe(3);
  });

  it('status exits 0 while the replicas stream, 1 while one is halted', async () => {
    const [r1] = clusters.replicas as [PostgresCluster];
    await withSidecar(clusters.configFile, async () => {
      await insertNumbered(clusters.primary, 1, 3);
      await eventually(async () => {
        const { code, status } = await statusJson();
        return (
          code === 0 && status.replicas.every((r) => r.version === 3 && r.state === 'streaming')
        );
      }, 'status exit 0 with both replicas streaming at version 3');

      await r1.query('INSERT INTO t VALUES (4, -4)'); // the primary's row 4 conflicts with it
      await insertNumbered(clusters.primary, 4, 1);
      await eventually(
        async () => (await statusJson()).status.replicas[0]?.state === 'halted',
        'replica1 halted',
      );
      const halted = await statusJson();
      expect(halted.code).toBe(1);
      expect(halted.status.replicas.map((r) => r.state)).toEqual(['halted', 'streaming']);
      expect((await command(['status'])).code).toBe(1);

      await r1.query('DELETE FROM t WHERE id = 4');
      await eventually(async () => (await appliedVersion(r1)) === 4, 'replica1 to resume');
      await eventually(async () => (await statusJson()).code === 0, 'status exit 0 again');
    });
  });

  it('status --watch: a line per refresh off a terminal, a JSON status per line with --json; Ctrl-C is exit 0', async () => {
    for (const json of [false, true]) {
      const watch = new LockstepProcess([
        'status',
        '--watch',
        '--interval',
        '0.2',
        '--config',
        clusters.configFile,
        ...(json ? ['--json'] : []),
      ]);
      const lines = () => watch.stdout.split('\n').filter((l) => l.length > 0);
      await eventually(async () => lines().length >= 3, 'three refreshes');
      watch.kill('SIGINT');
      expect(await watch.closed).toBe(0);
      for (const line of lines()) {
        expect(line).not.toContain('\x1b');
        const names = json
          ? (JSON.parse(line) as LockstepStatus).replicas.map((r) => r.name)
          : line
              .split(' | ')
              .slice(1, 3)
              .map((part) => part.split(' ')[0]);
        expect(names).toEqual(['replica1', 'replica2']);
      }
    }
  });

  it('pause, resume and recover report as JSON', async () => {
    await withActiveSidecar(async () => {
      const paused = await command(['pause', '--json']);
      expect(paused.code).toBe(0);
      expect(parsed(paused)).toMatchObject({
        paused: true,
        wasPaused: false,
        released: true,
        sidecar: { running: true },
      });
      expect(typeof parsed(paused).pausedSince).toBe('string');
      const resumed = await command(['resume', '--json']);
      expect(resumed.code).toBe(0);
      expect(parsed(resumed)).toMatchObject({ paused: false, pausedSince: null, wasPaused: true });
    });

    // A round's transaction a crash left prepared on a replica, no decision: rolled back.
    const gid = 'lockstep_lockstep_999_1e1';
    const [r1] = clusters.replicas as [PostgresCluster];
    await r1.query(
      `BEGIN; UPDATE lockstep.applied SET applied_at = now(); PREPARE TRANSACTION '${gid}'`,
    );
    const recovered = await command(['recover', '--json']);
    expect(recovered.code).toBe(0);
    expect(parsed(recovered)).toEqual({
      resolved: [{ node: 'replica1', gid, action: 'rolled-back', ageSeconds: expect.any(Number) }],
      failed: [],
    });
    expect(parsed(await command(['recover', '--json']))).toEqual({ resolved: [], failed: [] });
  });

  it('migrate status reports every node as JSON; a differing history is exit 1', async () => {
    writeFileSync(path.join(dir, '001-extra.sql'), 'CREATE TABLE extra (id int PRIMARY KEY);');
    const node = (name: string) => ({
      name,
      applied: [],
      pending: ['001-extra'],
      differs: false,
      error: null,
      reachable: true,
      // A replica's migrations applied before its copy, with no history row of them.
      ...(name === 'primary' ? {} : { copiedBefore: [] }),
    });
    const status = await command(['migrate', 'status', '--dir', dir, '--json']);
    expect(status.code).toBe(0);
    expect(parsed(status)).toEqual({
      files: ['001-extra'],
      nodes: [node('primary'), node('replica1'), node('replica2')],
      consistent: true,
    });
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await r2.query(
      `INSERT INTO lockstep.migrations (name, checksum, version) VALUES ('000-stray', 'x', 0)`,
    );
    try {
      const differs = await command(['migrate', 'status', '--dir', dir, '--json']);
      expect(differs.code).toBe(1);
      expect(parsed(differs)).toMatchObject({
        consistent: false,
        nodes: [{ differs: false }, { differs: false }, { name: 'replica2', differs: true }],
      });
    } finally {
      await r2.query(`DELETE FROM lockstep.migrations WHERE name = '000-stray'`);
    }
  });

  it('detach: refused while a sidecar runs (exit 1, the error as JSON), done once it stopped', async () => {
    await withActiveSidecar(async () => {
      const refused = await command(['detach', '--json']);
      expect(refused.code).toBe(1);
      expect(parsed(refused).error).toMatchObject({ node: 'primary', code: 1 });
    });
    const detached = await command(['detach', '--json']);
    expect(detached.code).toBe(0);
    expect(parsed(detached)).toEqual({
      slot: 'lockstep',
      publication: 'lockstep',
      slotDropped: true,
      publicationDropped: true,
      replicasReset: ['replica1', 'replica2'],
    });
  });
});
