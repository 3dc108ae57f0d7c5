import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { freezeInTransaction, sessionEnded } from '../support/frozen-session.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A `lockstep migrate` frozen (SIGSTOP, Ctrl-Z, a paused VM) inside its primary transaction holds
// the table it migrates (SHARE ROW EXCLUSIVE, ACCESS EXCLUSIVE for DDL) until it goes on.
const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE items (id int PRIMARY KEY, v text)',
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 20) g`,
  // lock_timeout of the migration's statements, and how long its transaction may sit idle.
  config: { twoPhase: { voteTimeoutMs: 5_000 } },
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-frozen-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MIGRATE = () => ['migrate', 'up', '--config', clusters.configFile, '--dir', dir];

describe('a lockstep migrate frozen inside its primary transaction', () => {
  it('keeps the application out of the table only until the server ends it; a rerun applies it once everywhere', async () => {
    const nodes = [clusters.primary, ...clusters.replicas];
    writeFileSync(
      path.join(dir, '001-c.sql'),
      'ALTER TABLE items ADD COLUMN c int; UPDATE items SET c = id;',
    );
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let started = null as LockstepProcess | null;
    const frozen = () => started as LockstepProcess;
    try {
      await eventually(async () => !!sidecar.logEvent('sidecar-active'), 'the sidecar active');
      // The real run has locked items when it records its marker: it waits there, then is frozen.
      // Started only once the marker's table is held, or it could finish first.
      const frozenPid = await freezeInTransaction(frozen, {
        node: clusters.primary,
        application: 'lockstep-migrate-session',
        holdSql: 'LOCK TABLE lockstep.control_events IN SHARE MODE',
        holds: 'items',
        trigger: async () => {
          started = new LockstepProcess(MIGRATE());
        },
      });
      // The application's write waits on the frozen migration's lock until the server ends it.
      await clusters.primary.query(`UPDATE items SET v = 'app' WHERE id = 1`);
      await sessionEnded(clusters.primary, 'lockstep-migrate-session', frozenPid);
      expect(await preparedGids(nodes)).toEqual([]);
      frozen().kill('SIGKILL');
      await frozen().exited;

      const again = await lockstep(MIGRATE());
      expect(again.code, again.output).toBe(0);
      for (const node of nodes) {
        const history = await node.query<{ name: string }>('SELECT name FROM lockstep.migrations');
        expect({ node: node.name, history }).toEqual({
          node: node.name,
          history: [{ name: '001-c' }],
        });
        const [row] = await node.query<{ v: string; c: number }>(
          'SELECT v, c FROM items WHERE id = 1',
        );
        expect({ node: node.name, row }).toEqual({ node: node.name, row: { v: 'app', c: 1 } });
      }
      expect(await preparedGids(nodes)).toEqual([]);
    } finally {
      started?.kill('SIGCONT');
      started?.kill('SIGKILL');
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('keeps a running migration whose own code waits between statements longer than the bound', async () => {
    const nodes = [clusters.primary, ...clusters.replicas];
    // Idle in its transaction for 7 s on every node, past voteTimeoutMs (5 s): only the keepalive keeps it.
    writeFileSync(
      path.join(dir, '002-slow.mjs'),
      `export async function up(db) {
         await db.schema.alterTable('items').addColumn('d', 'integer').execute();
         await new Promise((resolve) => setTimeout(resolve, 7000));
         await db.updateTable('items').set({ d: 2 }).execute();
       }`,
    );
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(async () => !!sidecar.logEvent('sidecar-active'), 'the sidecar active');
      const migrated = await lockstep(MIGRATE());
      expect(migrated.code, migrated.output).toBe(0);
      for (const node of nodes) {
        const [row] = await node.query<{ d: number }>('SELECT d FROM items WHERE id = 1');
        expect({ node: node.name, row }).toEqual({ node: node.name, row: { d: 2 } });
      }
      expect(await preparedGids(nodes)).toEqual([]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
