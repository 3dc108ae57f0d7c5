import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { tagTwoPhase, tagTwoPhaseKysely } from '../../plugin/client/index.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { sleep } from '../../plugin/support/sleep.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  preparedGids,
} from '../support/compare-nodes.js';
import { criticalSetup, CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import {
  type LockstepProcess,
  lockstep,
  withSidecar as withSidecarOn,
} from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached(criticalSetup({ voteTimeoutMs: 3_000 }));

const has = async (node: PostgresCluster, sql: string, params: unknown[] = []) =>
  (await node.query(sql, params)).length > 0;
const event = (node: PostgresCluster, note: string) =>
  has(node, 'SELECT 1 FROM events WHERE note = $1', [note]);
const account = (node: PostgresCluster, id: number) =>
  has(node, 'SELECT 1 FROM accounts WHERE id = $1', [id]);

function replicas(): [PostgresCluster, PostgresCluster] {
  return clusters.replicas as [PostgresCluster, PostgresCluster];
}

async function withSidecar(body: (sidecar: LockstepProcess) => Promise<void>): Promise<void> {
  await withSidecarOn(clusters.configFile, body);
  expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
}

/** The log line of an aborted round that `replica` refused, for a reason matching `why`. */
function refusedBy(sidecar: LockstepProcess, replica: string, why = /./) {
  return sidecar.logLines().find((l) => {
    const reason = (l.refusals as Record<string, string> | undefined)?.[replica];
    return (
      /^two-phase round aborted/.test(String(l.msg)) && reason !== undefined && why.test(reason)
    );
  });
}

describe('two-phase rounds for critical writes', () => {
  it('a critical write while a replica is down is visible on no replica, then on both once it is back, with later writes in order', async () => {
    const [r1, r2] = replicas();
    await withSidecar(async (sidecar) => {
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('before')`);
      await eventually(
        async () => (await event(r1, 'before')) && (await event(r2, 'before')),
        'one-phase rows on both',
      );
      await r2.stopServer('immediate');
      await clusters.primary.query('INSERT INTO accounts VALUES (1, 100)');
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('after the critical write')`);
      await eventually(
        async () => refusedBy(sidecar, 'replica2') !== undefined,
        'a round aborted because replica2 is down',
      );
      await sleep(1_500);
      // Held at the critical write: not on replica1, and nothing after it either.
      expect(await account(r1, 1)).toBe(false);
      expect(await event(r1, 'after the critical write')).toBe(false);

      await r2.startServer();
      await eventually(
        async () => (await account(r1, 1)) && (await account(r2, 1)),
        'the critical write on both replicas',
      );
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('later')`);
      await eventually(
        async () => (await event(r1, 'later')) && (await event(r2, 'later')),
        'later writes on both',
      );
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      expect(await appliedVersion(r1)).toBe(await appliedVersion(r2));
    });
  });

  it('a replica that cannot apply the packet votes no with the reason; nothing is committed anywhere until the row is removed', async () => {
    const [r1, r2] = replicas();
    await r1.query('INSERT INTO accounts VALUES (2, 999)');
    await withSidecar(async (sidecar) => {
      await clusters.primary.query('INSERT INTO accounts VALUES (2, 200)');
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('after the refused write')`);
      await eventually(
        async () =>
          refusedBy(sidecar, 'replica1', /^\[replica1, table public\.accounts\].*duplicate key/) !==
          undefined,
        'the round aborted with replica1 and its reason',
      );
      const config = loadConfig(clusters.configFile);
      await eventually(async () => {
        const status = await readStatus(postgresCluster(), config);
        return (
          status.replicas[0]?.state === 'halted' &&
          /duplicate key/.test(status.replicas[0]?.error ?? '')
        );
      }, 'status to show replica1 refusing and why');
      const held = (await readStatus(postgresCluster(), config)).twoPhase?.held;
      expect(held?.from).toBeGreaterThan(0);
      expect(held?.refusals.replica1).toMatch(/duplicate key/);
      const text = await lockstep(['status', '--config', clusters.configFile]);
      expect(text.output).toMatch(/two-phase: held at version \d+/);
      expect(text.output).toMatch(/replica1: \[replica1, table public\.accounts\]/);
      expect(await account(r2, 2)).toBe(false);
      expect(await event(r2, 'after the refused write')).toBe(false);
      expect(await r1.query('SELECT balance FROM accounts WHERE id = 2')).toEqual([
        { balance: 999 },
      ]);

      await r1.query('DELETE FROM accounts WHERE id = 2');
      await eventually(
        async () => (await account(r1, 2)) && (await account(r2, 2)),
        'the round to succeed once the row is gone',
      );
      await eventually(
        async () =>
          (await event(r1, 'after the refused write')) &&
          (await event(r2, 'after the refused write')),
        'the writes after it',
      );
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    });
  });

  it('a replica several versions behind votes needs-update, receives the delta, then votes yes in the same round', async () => {
    const [r1, r2] = replicas();
    await withSidecar(async (sidecar) => {
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('warm-up')`);
      await eventually(
        async () => (await event(r1, 'warm-up')) && (await event(r2, 'warm-up')),
        'warm-up on both',
      );
      // Replica2's apply waits on a lock, so it falls behind by several one-phase packets.
      const blocker = new pg.Client({ connectionString: r2.url });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
        for (let i = 0; i < 5; i++)
          await clusters.primary.query(`INSERT INTO events (note) VALUES ('behind ${i}')`);
        await clusters.primary.query('INSERT INTO accounts VALUES (3, 300)');
        await eventually(
          async () =>
            sidecar.logged(/./, { replica: 'replica2', vote: 'needs-update' }) !== undefined,
          'replica2 to vote needs-update',
        );
        await sleep(500);
        expect(await account(r1, 3)).toBe(false);
      } finally {
        await blocker.query('COMMIT');
        await blocker.end();
      }
      await eventually(
        async () => (await account(r1, 3)) && (await account(r2, 3)),
        'the critical write on both',
      );
      const needsUpdate = sidecar.logged(/./, { replica: 'replica2', vote: 'needs-update' });
      const gid = String(needsUpdate?.gid);
      // The same round committed: no abort of it was logged.
      expect(sidecar.logLines().find((l) => l.gid === gid && l.refusals)).toBeUndefined();
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    });
  });

  it('a transaction the application tagged (pg client and Kysely) goes two-phase; an untagged one does not', async () => {
    const [r1, r2] = replicas();
    await withSidecar(async () => {
      const twoPhaseVersions = async () =>
        (
          await clusters.primary.query<{ from: string; to: string }>(
            `SELECT version_from::text AS from, version_to::text AS to FROM lockstep.decisions WHERE decision = 'commit'`,
          )
        ).map((r) => [Number(r.from), Number(r.to)] as const);
      const versionOf = async (note: string) => {
        await eventually(async () => (await event(r1, note)) && (await event(r2, note)), note);
        return appliedVersion(r1);
      };
      const inDecision = async (version: number) =>
        (await twoPhaseVersions()).some(([from, to]) => from <= version && version <= to);

      const client = new pg.Client({ connectionString: clusters.primary.url });
      await client.connect();
      try {
        await client.query('BEGIN');
        await tagTwoPhase(client);
        await client.query(`INSERT INTO events (note) VALUES ('tagged with pg')`);
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
      expect(await inDecision(await versionOf('tagged with pg'))).toBe(true);

      const db = new Kysely<{ events: { note: string } }>({
        dialect: new PostgresDialect({
          pool: new pg.Pool({ connectionString: clusters.primary.url, max: 1 }),
        }),
      });
      try {
        await db.transaction().execute(async (trx) => {
          await tagTwoPhaseKysely(trx);
          await trx.insertInto('events').values({ note: 'tagged with kysely' }).execute();
        });
      } finally {
        await db.destroy();
      }
      expect(await inDecision(await versionOf('tagged with kysely'))).toBe(true);

      await clusters.primary.query(`INSERT INTO events (note) VALUES ('untagged')`);
      expect(await inDecision(await versionOf('untagged'))).toBe(false);
    });
  });
});
