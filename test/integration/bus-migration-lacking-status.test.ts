import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { MigrationStatus } from '../../plugin/migrate/migration-status.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { CRITICAL_TABLES } from '../support/critical-setup.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { loseMigrationOn } from '../support/lost-migration.js';
import { lackingSinceOlderAttach } from '../support/older-attach.js';
import { useBusCritical } from '../support/use-bus-critical.js';

const { clusters } = useBusCritical({ voteTimeoutMs: 10_000 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bus-migration-lacking-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations ORDER BY name')).map(
    (r) => r.name,
  );

/**
 * The configuration of a host that reaches the primary and NATS but no
 * replica: every replica's URL points at a closed port. What status and
 * migrate status say of the replicas with it came from the agents.
 */
function primarySideConfig(): string {
  const config = JSON.parse(readFileSync(clusters.configFile, 'utf8')) as {
    replicas: Array<{ name: string; url: string }>;
  };
  for (const r of config.replicas) r.url = `postgres://lockstep@127.0.0.1:1/${r.name}`;
  const file = path.join(dir, 'primary-side.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

async function status(config: string): Promise<{ code: number | null; status: LockstepStatus }> {
  const run = await lockstep(['status', '--config', config, '--json']);
  return { code: run.code, status: JSON.parse(run.stdout) as LockstepStatus };
}

async function migrateStatus(
  config: string,
): Promise<{ code: number | null; status: MigrationStatus }> {
  const run = await lockstep(['migrate', 'status', '--config', config, '--dir', dir, '--json']);
  return { code: run.code, status: JSON.parse(run.stdout) as MigrationStatus };
}

async function stopped(...processes: LockstepProcess[]): Promise<void> {
  for (const p of processes) {
    p.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }
}

function started() {
  const processes = [
    new LockstepProcess(['run', '--config', clusters.configFile]),
    startAgent(clusters.configFile, 'replica1'),
    startAgent(clusters.configFile, 'replica2'),
  ];
  const ready = eventually(
    async () =>
      processes[0]?.logEvent('running') !== undefined &&
      processes.slice(1).every((a) => a.logEvent('agent-active') !== undefined),
    'the sidecar and both agents to run',
  );
  return { processes, ready };
}

describe('over the bus, a replica whose migration gid was rolled back by hand', () => {
  it("halts at its marker, named by status and migrate status from its agent's report until it has it", async () => {
    const [r1, r2] = replicas();
    const primarySide = primarySideConfig();
    const { processes, ready } = started();
    try {
      await ready;
      const gid = await loseMigrationOn(clusters.configFile, dir, r1);
      await lockstep(['recover', '--config', clusters.configFile]);
      await eventually(
        async () => (await preparedGids([clusters.primary, r2])).length === 0,
        'the migration committed on the primary and replica2',
      );
      expect(await history(clusters.primary)).toEqual(['001-notes']);
      expect(await history(r2)).toEqual(['001-notes']);
      expect(await history(r1)).toEqual([]);

      // The stream goes on for replica2; replica1's agent halts at the marker, and is reported.
      await clusters.primary.query("INSERT INTO events (note) VALUES ('after the migration')");
      await eventually(
        async () =>
          (await r2.query("SELECT 1 FROM events WHERE note = 'after the migration'")).length === 1,
        'replica2 to apply on',
      );
      await eventually(
        async () =>
          processes[1]?.logEvent('replica-stopped', {
            kind: 'migration-missing',
            migration: gid,
          }) !== undefined,
        "replica1's agent to halt at the migration's marker",
      );
      expect(await r1.query("SELECT 1 FROM events WHERE note = 'after the migration'")).toEqual([]);
      await eventually(
        async () => (await status(primarySide)).status.replicas[0]?.migrationsDiffer === true,
        "status to judge replica1's reported history",
      );
      const seen = await status(primarySide);
      expect(seen.status.replicas[0]).toMatchObject({
        name: 'replica1',
        source: 'bus',
        reachable: true,
        migrationsDiffer: true,
        missingMigrations: ['001-notes'],
      });
      expect(seen.status.replicas[0]?.error).toMatch(/^\[replica1\][^\n]*001-notes/);
      expect(seen.status.replicas[0]?.error).toContain('lockstep attach --resync replica1');
      expect(seen.status.replicas[1]).toMatchObject({ name: 'replica2', migrationsDiffer: false });
      expect(seen.code).toBe(1);

      const migrations = await migrateStatus(primarySide);
      expect(migrations.status.nodes.map((n) => [n.name, n.differs, n.pending])).toEqual([
        ['primary', false, []],
        ['replica1', true, ['001-notes']],
        ['replica2', false, []],
      ]);
      expect(migrations.status.nodes[1]?.reported).toMatchObject({ count: 0, last: null });
      expect(migrations.code).toBe(1);

      // Still so after more of the stream: the state decides, not the round's event.
      await clusters.primary.query("INSERT INTO events (note) VALUES ('later still')");
      await eventually(
        async () =>
          (await r2.query("SELECT 1 FROM events WHERE note = 'later still'")).length === 1,
        'replica2 to apply on again',
      );
      expect((await status(primarySide)).status.replicas[0]?.missingMigrations).toEqual([
        '001-notes',
      ]);

      // The replica given the migration and its round by hand (a bus resync is refused here: see
      // the report): it passes the marker, and once it has the migration, status is clean again.
      const [row] = await clusters.primary.query<{ checksum: string }>(
        "SELECT checksum FROM lockstep.migrations WHERE name = '001-notes'",
      );
      await r1.query(`BEGIN;
        CREATE TABLE notes (id int PRIMARY KEY, body text);
        INSERT INTO lockstep.migrations (name, checksum, version) VALUES ('001-notes', '${row?.checksum}', 0);
        INSERT INTO lockstep.migration_gids (gid, stream) SELECT '${gid}', stream FROM lockstep.applied;
        COMMIT;`);
      await eventually(async () => {
        const after = await status(primarySide);
        return after.code === 0 && after.status.replicas[0]?.migrationsDiffer === false;
      }, 'status to be clean once replica1 has the migration');
      expect((await migrateStatus(primarySide)).code).toBe(0);
      await expectIdentical(clusters.primary, replicas(), [...CRITICAL_TABLES, 'notes']);
    } finally {
      await stopped(...processes);
    }
    expect(await preparedGids([clusters.primary, ...replicas()])).toEqual([]);
  }, 240_000);

  it("does not name migrations applied before a replica's copy that it has no row of (an older attach)", async () => {
    const [r1, r2] = replicas();
    const primarySide = primarySideConfig();
    const { processes, ready } = started();
    try {
      await ready;
      writeFileSync(path.join(dir, '002-tags.sql'), 'CREATE TABLE tags (id int PRIMARY KEY);');
      writeFileSync(path.join(dir, '003-labels.sql'), 'CREATE TABLE labels (id int PRIMARY KEY);');
      const up = await lockstep(['migrate', 'up', '--config', clusters.configFile, '--dir', dir]);
      expect(up.code, up.output).toBe(0);
      // 002 ran before replica1's copy began, and that attach copied no history; replica2
      // lacks 003, applied after its copy.
      await lackingSinceOlderAttach(clusters.primary, r1, '002-tags');
      await r2.query("DELETE FROM lockstep.migrations WHERE name = '003-labels'");

      // Both agents reporting the histories as they are now (one row fewer each), not from before.
      const rows = (await history(clusters.primary)).length - 1;
      await eventually(async () => {
        const { nodes } = (await migrateStatus(primarySide)).status;
        return nodes.slice(1).every((n) => n.reported?.count === rows);
      }, 'both agents to report the changed histories');
      const seen = await status(primarySide);
      expect(seen.status.replicas[0]).toMatchObject({
        name: 'replica1',
        source: 'bus',
        migrationsDiffer: false,
        missingMigrations: [],
      });
      expect(seen.status.replicas[1]).toMatchObject({
        name: 'replica2',
        migrationsDiffer: true,
        missingMigrations: ['003-labels'],
      });
      expect(seen.code).toBe(1);
      const migrations = await migrateStatus(primarySide);
      expect(
        migrations.status.nodes.map((n) => [n.name, n.differs, n.pending, n.copiedBefore]),
      ).toEqual([
        ['primary', false, [], undefined],
        ['replica1', false, [], ['002-tags']],
        ['replica2', true, ['003-labels'], []],
      ]);
      expect(migrations.code).toBe(1);
    } finally {
      await stopped(...processes);
    }
    expect(await preparedGids([clusters.primary, ...replicas()])).toEqual([]);
  }, 180_000);
});
