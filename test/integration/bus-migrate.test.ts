import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { agentSubject, decodeWire, encodeWire } from '../../plugin/protocol/round-subjects.js';
import { signedRequest } from '../support/bus-keys.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { CRITICAL_TABLES } from '../support/critical-setup.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

// lock_timeout of a migration's statements is voteTimeoutMs: long enough to hold replica2 back below.
const { nats, clusters } = useBusCritical({ voteTimeoutMs: 10_000 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bus-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const allNodes = () => [clusters.primary, ...replicas()];
const run = () => new LockstepProcess(['run', '--config', clusters.configFile]);
const agent = (name: string) => startAgent(clusters.configFile, name);
const migrate = (...args: string[]) =>
  lockstep(['migrate', ...args, '--config', clusters.configFile, '--dir', dir], {}, 120_000);

async function stopped(...processes: Array<LockstepProcess | null>): Promise<void> {
  for (const p of processes) {
    if (!p) continue;
    p.kill('SIGTERM');
    await p.exited;
  }
}

/** The sidecar (publisher and coordinator) and both agents, started. */
function started() {
  const agents: Array<LockstepProcess | null> = [agent('replica1'), agent('replica2')];
  return { coordinator: run(), agents };
}

/** The sidecar publishes and both agents answer: a migration finds everyone. */
async function ready(coordinator: LockstepProcess, agents: Array<LockstepProcess | null>) {
  await eventually(
    async () =>
      coordinator.logEvent('running') !== undefined &&
      agents.every((a) => a?.logEvent('agent-active') !== undefined),
    'the sidecar and both agents to run',
  );
}

const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations ORDER BY name')).map(
    (r) => r.name,
  );
const hasColumn = async (node: PostgresCluster, table: string, column: string) =>
  (
    await node.query(
      'SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2',
      [table, column],
    )
  ).length === 1;
const hasIndex = async (node: PostgresCluster, name: string) =>
  (await node.query('SELECT 1 FROM pg_indexes WHERE indexname = $1', [name])).length === 1;

/** Every node got `note` in events through the stream (it goes on after the migration). */
async function streamGoesOn(note: string): Promise<void> {
  await clusters.primary.query('INSERT INTO events (note) VALUES ($1)', [note]);
  await eventually(async () => {
    const seen = await Promise.all(
      replicas().map(
        async (r) => (await r.query('SELECT 1 FROM events WHERE note = $1', [note])).length,
      ),
    );
    return seen.every((n) => n === 1);
  }, `"${note}" on both replicas`);
}

describe('lockstep migrate and exec over the bus', () => {
  it('commits a migration and an exec on the primary and every replica, through the agents', async () => {
    const { coordinator, agents } = started();
    try {
      await ready(coordinator, agents);
      writeFileSync(
        path.join(dir, '001-notes.sql'),
        `ALTER TABLE events ADD COLUMN tag text;
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         -- lockstep:down
         DROP TABLE notes; ALTER TABLE events DROP COLUMN tag;`,
      );
      const up = await migrate('up');
      expect(up.output).toMatch(/001-notes: applied on replica1, replica2, primary/);
      expect(up.code).toBe(0);
      // Each replica's part ran in its agent, not over a connection of migrate's own.
      for (const a of agents) expect(await a?.untilEvent('migration-prepared')).toBeDefined();
      for (const node of allNodes()) {
        expect(await hasColumn(node, 'events', 'tag')).toBe(true);
        expect(await history(node)).toEqual(['001-notes']);
      }
      // The table the migration created is replicated from its first row.
      await clusters.primary.query("INSERT INTO notes VALUES (1, 'first')");
      await eventually(
        async () => (await replicas()[1].query('SELECT 1 FROM notes WHERE id = 1')).length === 1,
        'the new table to replicate',
      );
      const exec = await lockstep([
        'exec',
        '--config',
        clusters.configFile,
        '--sql',
        "UPDATE events SET tag = 'exec'",
      ]);
      expect(exec.output).toMatch(/executed on replica1, replica2, primary/);
      expect(exec.code).toBe(0);
      await streamGoesOn('after migrate');
      await expectIdentical(clusters.primary, replicas(), [...CRITICAL_TABLES, 'notes']);
      expect(await preparedGids(allNodes())).toEqual([]);
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('aborts everywhere when one replica refuses, naming it; refuses Kysely modules and a missing agent', async () => {
    const r2 = replicas()[1];
    await r2.query("INSERT INTO events (id, note) VALUES (100000, 'dup'), (100001, 'dup')");
    const { coordinator, agents } = started();
    try {
      await ready(coordinator, agents);
      writeFileSync(
        path.join(dir, '002-unique-notes.sql'),
        'CREATE UNIQUE INDEX events_note ON events (note);',
      );
      const refused = await migrate('up');
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(/002-unique-notes: refused — nothing changed on any node/);
      expect(refused.output).toMatch(
        /replica2\s+no\s+\[replica2\] could not create unique index "events_note"/,
      );
      for (const node of allNodes()) {
        expect(await hasIndex(node, 'events_note')).toBe(false);
        expect(await history(node)).toEqual(['001-notes']);
      }
      expect(await preparedGids(allNodes())).toEqual([]);
      // A request alone runs nothing: the agent takes only work the stream vouched for.
      const [row] = await clusters.primary.query<{ epoch: string }>(
        "SELECT epoch::text AS epoch FROM lockstep.streams WHERE stream = 'lockstep'",
      );
      const nc = await connect({ servers: nats.cluster.url.split(',') });
      // Signed with lockstep run's key: even so, not run.
      const subject = agentSubject('lockstep', 'replica1', 'migrate');
      const request = signedRequest(
        subject,
        encodeWire({ epoch: Number(row?.epoch), gid: 'lockstep_lockstep_m1_1' }),
      );
      const forged = await nc.request(subject, request.data, {
        timeout: 5_000,
        headers: request.headers,
      });
      await nc.close();
      expect(decodeWire<{ ok: boolean; error: string }>(forged.data)).toMatchObject({
        ok: false,
        error: expect.stringMatching(/not in the stream this agent read/),
      });
      expect(await preparedGids(allNodes())).toEqual([]);
      await r2.query('DELETE FROM events WHERE id >= 100000');
      rmSync(path.join(dir, '002-unique-notes.sql'));

      writeFileSync(path.join(dir, '003-module.mjs'), 'export async function up(db) {}');
      const module = await migrate('up');
      expect(module.code).toBe(1);
      expect(module.output).toMatch(/003-module is a Kysely module: with bus/);
      rmSync(path.join(dir, '003-module.mjs'));

      agents[1]?.kill('SIGTERM');
      await agents[1]?.exited;
      const down = await lockstep(['exec', '--config', clusters.configFile, '--sql', 'SELECT 1']);
      expect(down.code).toBe(3);
      expect(down.output).toMatch(/\[replica2\] its agent did not answer/);
      expect(await preparedGids(allNodes())).toEqual([]);
    } finally {
      await stopped(...agents, coordinator);
    }
  });

  it('commits everywhere when an agent is SIGKILLed after voting yes, and the restarted agent converges', async () => {
    const [r1, r2] = replicas();
    const { coordinator, agents } = started();
    // replica2's prepare waits for this lock: replica1 votes yes first and is killed meanwhile.
    const hold = new pg.Client({ connectionString: r2.url });
    await hold.connect();
    try {
      await ready(coordinator, agents);
      await hold.query('BEGIN');
      await hold.query('LOCK TABLE events IN SHARE MODE');
      writeFileSync(
        path.join(dir, '004-priority.sql'),
        'ALTER TABLE events ADD COLUMN priority int;',
      );
      const migrating = migrate('up');
      await eventually(
        async () => agents[0]?.logEvent('migration-prepared') !== undefined,
        'replica1 to prepare the migration',
      );
      agents[0]?.kill('SIGKILL');
      await agents[0]?.exited;
      await hold.query('COMMIT');
      // Decided commit; replica1's phase two waits for its agent, never aborts.
      await eventually(
        async () =>
          (await r2.query('SELECT 1 FROM lockstep.migrations WHERE name = $1', ['004-priority']))
            .length === 1,
        'replica2 to commit',
      );
      expect((await preparedGids([r1])).length).toBe(1);
      agents[0] = agent('replica1');
      const result = await migrating;
      expect(result.output).toMatch(/004-priority: applied on replica1, replica2, primary/);
      expect(result.code).toBe(0);
      for (const node of allNodes()) expect(await hasColumn(node, 'events', 'priority')).toBe(true);
      await streamGoesOn('after the killed agent');
      await expectIdentical(clusters.primary, replicas(), [...CRITICAL_TABLES, 'notes']);
      expect(await preparedGids(allNodes())).toEqual([]);
    } finally {
      await hold.end().catch(() => undefined);
      await stopped(...agents, coordinator);
    }
  });
});
