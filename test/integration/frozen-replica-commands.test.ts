import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { expectIdentical, rowCount } from '../support/compare-nodes.js';
import {
  APPLY_TIMEOUT_MS,
  frozenDuring,
  HANG_MS,
  lockTable,
  useTwoReplicas,
} from '../support/frozen-replica.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';

const clusters = useTwoReplicas();
const { replicasOf } = clusters;

describe('commands with a replica frozen (SIGSTOP) in one of their steps', () => {
  it('doctor names the frozen replica and still checks the other', async () => {
    const [r1, r2] = replicasOf();
    // captureDdl: doctor reads each replica's position (a table difference may be DDL on its way).
    const config = writeConfig(clusters.primary, clusters.replicas, {
      applyTimeoutMs: APPLY_TIMEOUT_MS,
      twoPhase: { captureDdl: true },
    });
    // A difference only replica2 has: its report shows replica2 was checked.
    await r2.query('ALTER TABLE items ALTER COLUMN v TYPE varchar(10)');
    try {
      const doctor = await frozenDuring(r1, ['doctor', '--config', config.file]);
      expect(doctor.code, doctor.output).toBe(3);
      expect(doctor.output).toMatch(
        /\[replica1\] doctor's checks \(settings, tables, position\) failed: the replica did not answer for 3000 ms \(applyTimeoutMs\)\n {2}fix: check that the replica's server runs and answers/,
      );
      expect(doctor.output).toMatch(/\[replica2, table public\.items\] .*column "?v"?/);
    } finally {
      await r2.query('ALTER TABLE items ALTER COLUMN v TYPE text');
      config.remove();
    }
  }, 120_000);

  it('a resync names the frozen replica it needed a starting point from, and empties nothing', async () => {
    const [r1, r2] = replicasOf();
    const resync = ['attach', '--config', clusters.configFile, '--resync', 'replica1'];
    const frozen = await frozenDuring(r2, resync);
    expect(frozen.code, frozen.output).toBe(1);
    expect(frozen.output).toMatch(
      /\[replica1\] cannot resync: no healthy replica holds a position the slot still has WAL for; replica2: reading its position \(the starting point of a resync\) failed: the replica did not answer for 3000 ms/,
    );
    expect(frozen.output).toMatch(/fix: run the resync again once replica2 answers/);
    // Failed before its reset: replica1 keeps its rows (and stays marked stale until resynced).
    expect(await rowCount(r1, 'items')).toBe(50);

    const resynced = await lockstep(resync, {}, HANG_MS);
    expect(resynced.code, resynced.output).toBe(0);
    await expectIdentical(clusters.primary, clusters.replicas, ['items']);
  }, 120_000);

  it("detach forgets the other replica's position and names the frozen one; detach again finishes", async () => {
    const [r1, r2] = replicasOf();
    const positions = (node: PostgresCluster) =>
      node.query<{ stream: string }>('SELECT stream FROM lockstep.applied');
    const detach = ['detach', '--config', clusters.configFile];
    const frozen = await frozenDuring(r1, detach);
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(
      /\[replica1\] the slot and publication are gone, but not every replica's position could be removed \(done: replica2\): \[replica1\] removing the stream's position failed: the replica did not answer for 3000 ms/,
    );
    expect(frozen.output).toMatch(/then run lockstep detach again/);
    expect(await positions(r2)).toEqual([]);
    expect(await positions(r1)).toEqual([{ stream: 'lockstep' }]);

    const again = await lockstep(detach, {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect(await positions(r1)).toEqual([]);
  }, 120_000);

  it('detach does not call a replica that waits on a lock one that does not answer', async () => {
    const [r1] = replicasOf();
    // Alive, answering, but another session holds the position table: not a frozen host.
    const release = await lockTable(r1);
    try {
      const detached = await lockstep(['detach', '--config', clusters.configFile], {}, HANG_MS);
      expect(detached.output).toMatch(/\[replica1\]/);
      expect(detached.output).not.toMatch(/did not answer|not stopped, not overloaded/);
      expect(detached.code, detached.output).not.toBe(3);
    } finally {
      await release();
    }
  }, 120_000);
});
