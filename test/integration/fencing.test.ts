import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { PgReplicaTarget } from '../../adapters/postgres/apply/replica-target.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../../adapters/postgres/connection/connection-url.js';
import { migrateControlSchema } from '../../adapters/postgres/control/control-schema.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import {
  type Change,
  type Lsn,
  makeMigrationGid,
  type Relation,
} from '../../plugin/protocol/index.js';
import { eventually } from '../support/compare-nodes.js';
import { useClusters } from '../support/use-clusters.js';

// Both servers acknowledge commits before they are on disk unless asked otherwise, and the
// WAL writer waits long: a commit lockstep relies on must force its own durability.
const LAZY = { synchronous_commit: 'off', wal_writer_delay: '10s' };
const clusters = useClusters({
  replicas: 1,
  primary: { settings: LAZY },
  replica: { settings: LAZY },
});
const STREAM = 'fenced';

/** `t` without a key (REPLICA IDENTITY FULL): an insert applied twice would show as two rows. */
const T: Relation = {
  oid: 1,
  schema: 'public',
  name: 't',
  replicaIdentity: 'full',
  columns: [
    { name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true },
    { name: 'v', typeOid: 25, typeMod: -1, typeName: null, isKey: true },
  ],
  keyIndexes: [0, 1],
};
const insert = (id: number): Change => ({
  kind: 'insert',
  relation: T,
  row: [String(id), `v${id}`],
});
const packet = (version: number, ids: number[]) => ({
  changes: ids.map(insert),
  version,
  lsn: `0/${(0x1000 + version).toString(16)}` as Lsn,
});
const NOW = new Date().toISOString();

async function freshReplica(replica: PostgresCluster): Promise<void> {
  await migrateControlSchema('replica', replica.url, CONTROL_QUERY_TIMEOUT_MS);
  await replica.query(`DROP TABLE IF EXISTS t; CREATE TABLE t (id int, v text);
    DELETE FROM lockstep.applied WHERE stream = '${STREAM}';
    DELETE FROM lockstep.synced_tables WHERE stream = '${STREAM}';
    INSERT INTO lockstep.applied (stream, version, lsn) VALUES ('${STREAM}', 0, '0/1000');
    INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
      VALUES ('${STREAM}', 'public', 't', '0/0', 0)`);
}

const target = (replica: PostgresCluster) =>
  new PgReplicaTarget('r1', replica.url, STREAM, 'halt', { participantTimeoutMs: 5_000 });

async function rejection(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => null,
    (error: unknown) => error,
  );
}

describe('fencing: one applier and one coordinator at a time', () => {
  it('a replica batch moves the position by compare-and-set: a second applier from the same version applies nothing', async () => {
    const replica = clusters.replicas[0] as PostgresCluster;
    await freshReplica(replica);
    const first = target(replica);
    const deposed = target(replica);
    try {
      expect(await first.open()).toMatchObject({ version: 0 });
      expect(await deposed.open()).toMatchObject({ version: 0 });
      const batch = [packet(1, [1, 2])];
      await first.applyBatch(batch, { version: 1, lsn: batch[0]?.lsn as Lsn }, NOW);
      // The deposed applier still believes the replica is at version 0: the same batch again.
      const refused = await rejection(
        deposed.applyBatch(batch, { version: 1, lsn: batch[0]?.lsn as Lsn }, NOW),
      );
      expect(refused).toBeInstanceOf(ApplyError);
      expect(refused).toMatchObject({ kind: 'fenced' });
      // A large packet streamed in parts is fenced the same way.
      deposed.begin(0);
      await deposed.apply(packet(1, [1]).changes, 1, packet(1, []).lsn);
      const streamed = await rejection(deposed.commit({ version: 1, lsn: packet(1, []).lsn }, NOW));
      expect(streamed).toMatchObject({ kind: 'fenced' });
      expect(await replica.query('SELECT id FROM t ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
      expect(await replica.query('SELECT version::int AS v FROM lockstep.applied')).toEqual([
        { v: 1 },
      ]);
      // The next batch from where the replica really is goes through.
      await first.applyBatch([packet(2, [3])], { version: 2, lsn: packet(2, []).lsn }, NOW);
      expect(await replica.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 3 }]);

      // Concurrently: the second applier waits on the position row while the first's
      // transaction is open, then fails the check once the first commits.
      expect(await deposed.open()).toMatchObject({ version: 2 });
      first.begin(2);
      await first.apply(packet(3, [4]).changes, 3, packet(3, []).lsn);
      // The pipeline sends the first's FOR UPDATE without waiting for it: under load the
      // other backend could lock the row first. Its statements done, its transaction open:
      await eventually(
        async () =>
          (
            await replica.query(
              `SELECT 1 FROM pg_stat_activity
                WHERE state = 'idle in transaction' AND backend_xid IS NOT NULL`,
            )
          ).length > 0,
        "the first applier's transaction holding its position row",
      );
      const racing = rejection(
        deposed.applyBatch([packet(3, [4])], { version: 3, lsn: packet(3, []).lsn }, NOW),
      );
      await new Promise((r) => setTimeout(r, 300));
      await first.commit({ version: 3, lsn: packet(3, []).lsn }, NOW);
      expect(await racing).toMatchObject({ kind: 'fenced' });
      expect(await replica.query('SELECT count(*)::int AS n FROM t WHERE id = 4')).toEqual([
        { n: 1 },
      ]);
    } finally {
      await first.close();
      await deposed.close();
    }
  });

  it('taking the coordinator lock raises the epoch: the deposed holder notices, and its commit decision is refused', async () => {
    const { primary } = clusters;
    await migrateControlSchema('primary', primary.url, CONTROL_QUERY_TIMEOUT_MS);
    await primary.query(`INSERT INTO lockstep.streams (stream, slot, publication, start_lsn)
      VALUES ('${STREAM}', '${STREAM}', '${STREAM}', '0/1') ON CONFLICT DO NOTHING`);
    const first = new StreamLock(primary.url, STREAM);
    const second = new StreamLock(primary.url, STREAM);
    let lost = 0;
    first.onLost(() => lost++);
    const firstLog = new DecisionLog(primary.url, STREAM, () => first.epoch);
    const secondLog = new DecisionLog(primary.url, STREAM, () => second.epoch);
    const record = (gid: string) => ({
      gid,
      round: 1,
      versionFrom: 5,
      versionTo: 5,
      participants: ['r1'],
    });
    try {
      expect(await first.tryAcquire()).toBe(true);
      expect(await second.tryAcquire()).toBe(false);
      const deposedEpoch = first.epoch as number;
      expect(await first.verify()).toBe(true);
      // The lock's session ends while the process lives on (a DBA, idle_session_timeout, a blip).
      await primary.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lockstep-coordinator'`,
      );
      await eventually(async () => second.tryAcquire(), 'the standby to take the lock');
      expect(second.epoch).toBe(deposedEpoch + 1);
      await eventually(async () => lost === 1, 'the deposed holder to notice');
      expect(await first.verify()).toBe(false);
      // Even holding its old epoch, a deposed writer cannot commit a round.
      const stale = new DecisionLog(primary.url, STREAM, () => deposedEpoch);
      try {
        expect(
          await rejection(stale.decide(record('lockstep_fenced_5_1e1'), 'commit')),
        ).toBeInstanceOf(DeposedError);
      } finally {
        await stale.close();
      }
      expect(
        await rejection(firstLog.decide(record('lockstep_fenced_5_1e1'), 'commit')),
      ).toBeInstanceOf(DeposedError);
      expect(
        await primary.query(
          `SELECT gid FROM lockstep.decisions WHERE gid = 'lockstep_fenced_5_1e1'`,
        ),
      ).toEqual([]);
      expect(await secondLog.decide(record('lockstep_fenced_5_1e2'), 'commit')).toBe('commit');
      expect(await second.verify()).toBe(true);
    } finally {
      await firstLog.close();
      await secondLog.close();
      await first.release();
      await second.release();
    }
  });

  it('a commit decision and a replica batch survive a crash of their server right after they return, whatever synchronous_commit the server has', async () => {
    const { primary } = clusters;
    const replica = clusters.replicas[0] as PostgresCluster;
    await freshReplica(replica);
    const lock = new StreamLock(primary.url, STREAM);
    const log = new DecisionLog(primary.url, STREAM, () => lock.epoch);
    const applier = target(replica);
    try {
      expect(await lock.tryAcquire()).toBe(true);
      const gid = `lockstep_fenced_9_1e${lock.epoch}`;
      expect(
        await log.decide(
          { gid, round: 1, versionFrom: 9, versionTo: 9, participants: ['r1'] },
          'commit',
        ),
      ).toBe('commit');
      await applier.open();
      await applier.applyBatch([packet(1, [7])], { version: 1, lsn: packet(1, []).lsn }, NOW);
      await applier.close();
      await Promise.all([primary.stopServer('immediate'), replica.stopServer('immediate')]);
      await Promise.all([primary.startServer(), replica.startServer()]);
      expect(
        await primary.query('SELECT decision FROM lockstep.decisions WHERE gid = $1', [gid]),
      ).toEqual([{ decision: 'commit' }]);
      expect(await replica.query('SELECT version::int AS v FROM lockstep.applied')).toEqual([
        { v: 1 },
      ]);
      expect(await replica.query('SELECT id FROM t')).toEqual([{ id: 7 }]);
    } finally {
      await log.close();
      await applier.close();
      await lock.release();
    }
  });

  it("a migration needs no epoch: a successor's presumed abort and the deposed migrator's commit are one row, the first written wins", async () => {
    const { primary } = clusters;
    await migrateControlSchema('primary', primary.url, CONTROL_QUERY_TIMEOUT_MS);
    const gid = makeMigrationGid(STREAM, Date.now(), 1);
    const record = { gid, round: 0, versionFrom: 0, versionTo: 0, participants: ['r1'] };
    // Unfenced, as migrate's: the migrate lock decides who recovers, not who may decide.
    const deposed = new DecisionLog(primary.url, STREAM);
    const successor = new DecisionLog(primary.url, STREAM);
    try {
      // The successor recovers the gid first: presumed abort, written before any rollback.
      expect(await successor.decide(record, 'abort')).toBe('abort');
      // The deposed migrator, still running, then decides commit: it is told abort.
      expect(await deposed.decide(record, 'commit')).toBe('abort');
      // And the other order: a commit written first is what a later recovery finds.
      const second = { ...record, gid: makeMigrationGid(STREAM, Date.now() + 1, 1) };
      expect(await deposed.decide(second, 'commit')).toBe('commit');
      expect(await successor.decide(second, 'abort')).toBe('commit');
    } finally {
      await deposed.close();
      await successor.close();
    }
  });
});
