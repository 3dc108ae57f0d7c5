import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../../adapters/postgres/connection/connection-url.js';
import { migrateControlSchema } from '../../adapters/postgres/control/control-schema.js';
import { DecisionLog } from '../../adapters/postgres/control/decision-log.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { recoverPrepared } from '../../plugin/coordinator/recover-prepared.js';
import { makeGid, makeMigrationGid } from '../../plugin/protocol/index.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });
const STREAM = 'pruned';

const backdate = (primary: PostgresCluster, gids: string[]) =>
  primary.query(
    `UPDATE lockstep.decisions SET decided_at = now() - interval '2 hours' WHERE gid = ANY($1)`,
    [gids],
  );

// Recovery forgets decisions an hour old whose gids it found prepared nowhere. It looks only at the
// nodes it was given: a replica leaving the configuration is recovered alone, and a bus sidecar's
// recovery reaches the replicas' agents, never the primary's part of a migration.
describe('decision log pruning after a recovery over some nodes', () => {
  it('keeps a commit decision whose gid is still prepared on a node the pass did not list', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await migrateControlSchema('primary', primary.url, CONTROL_QUERY_TIMEOUT_MS);
    for (const r of [r1, r2])
      await migrateControlSchema('replica', r.url, CONTROL_QUERY_TIMEOUT_MS);
    const gid = makeGid({ stream: STREAM, version: 5, round: 3, epoch: 1 });
    // r2 still holds the round prepared (its agent was away); r1 committed it already.
    await r2.query('CREATE TABLE IF NOT EXISTS t (id int)');
    await r2.query(`BEGIN; INSERT INTO t VALUES (5); PREPARE TRANSACTION '${gid}'`);
    const decisions = new DecisionLog(primary.url, STREAM);
    const record = { gid, round: 3, versionFrom: 5, versionTo: 5, participants: ['r1', 'r2'] };
    expect(await decisions.decide(record, 'commit')).toBe('commit');
    const later = makeGid({ stream: STREAM, version: 6, round: 4, epoch: 1 });
    await decisions.decide({ ...record, gid: later, round: 4 }, 'commit');
    // The commit point is older than the retention (an hour).
    await backdate(primary, [gid]);
    const n1 = new PreparedTransactions('r1', r1.url);
    const n2 = new PreparedTransactions('r2', r2.url);
    try {
      // What TwoPhaseCoordinator.recoverNode does when r1 leaves the configuration (and what a
      // bus sidecar's recovery does with the primary, which it never lists).
      await recoverPrepared(STREAM, [n1], decisions, { kinds: ['stream'] });
      const kept = (await decisions.read([gid])).get(gid);
      const second = await recoverPrepared(STREAM, [n2], decisions, { kinds: ['stream'] });
      const rows = await r2.query<{ n: string }>('SELECT count(*)::text AS n FROM t WHERE id = 5');
      expect({ kept, action: second.resolved[0]?.action, rows: rows[0]?.n }).toEqual({
        kept: 'commit',
        action: 'committed',
        rows: '1',
      });
    } finally {
      await n1.close();
      await n2.close();
      await decisions.close();
    }
  });
  it('keeps a migration commit decision whose gid is still prepared on the primary (bus mode lists replicas only)', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const gid = makeMigrationGid(STREAM, 77, 1);
    // `migrate` committed the replicas first, then died before COMMIT PREPARED on the primary.
    await primary.query('CREATE TABLE IF NOT EXISTS m (id int)');
    await primary.query(`BEGIN; INSERT INTO m VALUES (77); PREPARE TRANSACTION '${gid}'`);
    const decisions = new DecisionLog(primary.url, STREAM);
    const record = {
      gid,
      round: 0,
      versionFrom: 0,
      versionTo: 0,
      participants: ['r1', 'r2', 'primary'],
    };
    expect(await decisions.decide(record, 'commit')).toBe('commit');
    await backdate(primary, [gid]);
    const replicaNodes = [
      new PreparedTransactions('r1', r1.url),
      new PreparedTransactions('r2', r2.url),
    ];
    const onPrimary = new PreparedTransactions('primary', primary.url);
    try {
      // BusRounds' periodic recovery: its nodes are the replicas' agents only.
      await recoverPrepared(STREAM, replicaNodes, decisions, { kinds: ['stream'] });
      const kept = (await decisions.read([gid])).get(gid);
      // `lockstep recover` / the next `migrate`: the migrate lock's holder finishes migrations.
      const later = await recoverPrepared(STREAM, [onPrimary], decisions, { kinds: ['migration'] });
      const rows = await primary.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM m WHERE id = 77',
      );
      expect({ kept, action: later.resolved[0]?.action, rows: rows[0]?.n }).toEqual({
        kept: 'commit',
        action: 'committed',
        rows: '1',
      });
    } finally {
      for (const n of [...replicaNodes, onPrimary]) await n.close();
      await decisions.close();
    }
  });

  it('forgets an old commit once every participant was listed without it, and any old abort', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const decisions = new DecisionLog(primary.url, STREAM);
    const gid = (round: number) =>
      makeGid({ stream: STREAM, version: 100 + round, round: 100 + round, epoch: 1 });
    const record = (round: number, participants: string[]) => ({
      gid: gid(round),
      round: 100 + round,
      versionFrom: 100 + round,
      versionTo: 100 + round,
      participants,
    });
    await decisions.decide(record(1, ['r1', 'r2']), 'commit');
    // An abort naming a node no pass lists: a missing row means abort anyway.
    await decisions.decide(record(2, ['r1', 'gone']), 'abort');
    // The newest row carries the round counter and is always kept.
    await decisions.decide(record(3, ['r1', 'r2']), 'commit');
    await backdate(primary, [gid(1), gid(2), gid(3)]);
    const nodes = [new PreparedTransactions('r1', r1.url), new PreparedTransactions('r2', r2.url)];
    try {
      const report = await recoverPrepared(STREAM, nodes, decisions, { kinds: ['stream'] });
      expect(report.failed).toEqual([]);
      const left = await decisions.read([gid(1), gid(2), gid(3)]);
      expect([...left.keys()]).toEqual([gid(3)]);
    } finally {
      for (const n of nodes) await n.close();
      await decisions.close();
    }
  });

  it('with a node down, still forgets what the listed nodes settle, and keeps commits naming it', async () => {
    const { primary } = clusters;
    const [r1] = clusters.replicas as [PostgresCluster];
    const decisions = new DecisionLog(primary.url, STREAM);
    const gid = (round: number) =>
      makeGid({ stream: STREAM, version: 200 + round, round: 200 + round, epoch: 1 });
    const record = (round: number, participants: string[]) => ({
      gid: gid(round),
      round: 200 + round,
      versionFrom: 200 + round,
      versionTo: 200 + round,
      participants,
    });
    await decisions.decide(record(1, ['r1']), 'commit');
    await decisions.decide(record(2, ['r1', 'r2']), 'commit');
    await decisions.decide(record(3, ['r1']), 'commit');
    await backdate(primary, [gid(1), gid(2), gid(3)]);
    // r2 cannot be reached: nothing listens where it is configured.
    const nodes = [
      new PreparedTransactions('r1', r1.url),
      new PreparedTransactions('r2', 'postgres://lockstep@127.0.0.1:1/postgres'),
    ];
    try {
      const report = await recoverPrepared(STREAM, nodes, decisions, { kinds: ['stream'] });
      expect(report.failed.map((f) => f.node)).toEqual(['r2']);
      const left = await decisions.read([gid(1), gid(2), gid(3)]);
      expect([...left.keys()].sort()).toEqual([gid(2), gid(3)].sort());
    } finally {
      for (const n of nodes) await n.close();
      await decisions.close();
    }
  });
});
