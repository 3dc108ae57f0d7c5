import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { freezeInTransaction, sessionsOf } from '../support/frozen-session.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

// An agent frozen (SIGSTOP, a paused VM) while it prepares a migration on its replica: the
// coordinator waited up to 600 s for its answer, and meanwhile the primary's part of the round kept
// the migrated table locked on the PRIMARY. A frozen agent now fails the round after voteTimeoutMs.
const { clusters } = useBusCritical({ voteTimeoutMs: 5_000 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-frozen-agent-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const nodes = () => [clusters.primary, ...replicas()];
const MIGRATE = () => ['migrate', 'up', '--config', clusters.configFile, '--dir', dir];
const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations')).map((r) => r.name);

/** Whether some session holds replica's agent lock for the stream (ReplicaAgentLock's key). */
async function agentLockHeld(node: PostgresCluster): Promise<boolean> {
  const rows = await node.query(
    `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
       AND classid = hashtext('lockstep.agent')::oid AND objid = hashtext('lockstep')::oid`,
  );
  return rows.length > 0;
}

async function running(coordinator: LockstepProcess, agents: LockstepProcess[]): Promise<void> {
  await eventually(
    async () =>
      coordinator.logEvent('running') !== undefined &&
      agents.every((a) => a.logEvent('agent-active') !== undefined),
    'the sidecar and both agents running',
  );
}

describe('an agent frozen while it prepares a migration', () => {
  it('fails the round at once: the primary is writable, nothing stays prepared, a rerun applies it once', async () => {
    writeFileSync(
      path.join(dir, '001-c.sql'),
      'ALTER TABLE events ADD COLUMN c int; UPDATE events SET c = 1;',
    );
    await clusters.primary.query(`INSERT INTO events (note) VALUES ('before')`);
    const coordinator = new LockstepProcess(['run', '--config', clusters.configFile]);
    const frozen = startAgent(clusters.configFile, 'replica1');
    const other = startAgent(clusters.configFile, 'replica2');
    let first = null as LockstepProcess | null;
    try {
      await running(coordinator, [frozen, other]);
      // Its ALTER waits on the rows held here, goes on once frozen, and keeps the table.
      await freezeInTransaction(frozen, {
        node: replicas()[0],
        application: 'lockstep-migrate-session',
        holdSql: 'SELECT 1 FROM events FOR UPDATE',
        holds: 'events',
        trigger: async () => {
          first = new LockstepProcess(MIGRATE());
        },
      });
      const refused = first as unknown as LockstepProcess;
      // No timing assertion: waiting out the 600 s cap would time the test out.
      expect(await refused.closed, refused.output).not.toBe(0);
      expect(refused.logEvent('agent-unresponsive', { replica: 'replica1' })).toBeDefined();
      // The application writes the primary's table while the agent is still frozen.
      await clusters.primary.query(`UPDATE events SET note = 'app'`);
      for (const node of nodes()) expect(await history(node)).toEqual([]);
      // Thawed, its prepare finds the round over (or its transaction ended by the server): nothing stays prepared.
      const activations = frozen.events('agent-active').length;
      frozen.kill('SIGCONT');
      await eventually(
        async () =>
          (await preparedGids(nodes())).length === 0 &&
          (await sessionsOf(replicas()[0], 'lockstep-migrate-session')).every((s) => !s.holdsRow),
        'nothing prepared or held after the thaw',
      );
      // Frozen longer than the lock session may idle (15 s; the refusal alone took longer), its
      // session was ended by the server: it answers once it took the lock again.
      await eventually(
        async () =>
          frozen.events('agent-active').length > activations &&
          (await agentLockHeld(replicas()[0] as PostgresCluster)),
        'the thawed agent holding its lock again',
      );
      const again = await lockstep(MIGRATE());
      expect(again.code, again.output).toBe(0);
      for (const node of nodes()) {
        expect({ node: node.name, history: await history(node) }).toEqual({
          node: node.name,
          history: ['001-c'],
        });
        await eventually(
          async () =>
            (await node.query<{ note: string; c: number }>('SELECT note, c FROM events')).every(
              (r) => r.note === 'app' && r.c === 1,
            ),
          `${node.name} holds the application's write and the migration's`,
        );
      }
      expect(await preparedGids(nodes())).toEqual([]);
    } finally {
      (first as LockstepProcess | null)?.kill('SIGKILL');
      frozen.kill('SIGCONT');
      for (const p of [frozen, other, coordinator]) {
        p.kill('SIGTERM');
        await p.exited;
      }
    }
  }, 120_000);

  it('keeps a live agent whose prepare runs longer than voteTimeoutMs', async () => {
    // Busy for 7 s on every node, past voteTimeoutMs (5 s): the agent answers meanwhile, so it is waited for.
    writeFileSync(
      path.join(dir, '002-slow.sql'),
      'ALTER TABLE events ADD COLUMN d int; SELECT pg_sleep(7); UPDATE events SET d = 2;',
    );
    const coordinator = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agents = ['replica1', 'replica2'].map((r) => startAgent(clusters.configFile, r));
    try {
      await running(coordinator, agents);
      const migrated = await lockstep(MIGRATE());
      expect(migrated.code, migrated.output).toBe(0);
      for (const node of nodes()) {
        const applied = (await history(node)).filter((name) => name === '002-slow');
        expect({ node: node.name, applied }).toEqual({ node: node.name, applied: ['002-slow'] });
        const rows = await node.query<{ d: number }>('SELECT d FROM events');
        expect({ node: node.name, rows }).toEqual({ node: node.name, rows: [{ d: 2 }] });
      }
      expect(await preparedGids(nodes())).toEqual([]);
    } finally {
      for (const p of [...agents, coordinator]) {
        p.kill('SIGTERM');
        await p.exited;
      }
    }
  }, 120_000);
});
