import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { criticalSetup } from '../support/critical-setup.js';
import { freePort } from '../support/free-port.js';
import { lockTable } from '../support/frozen-replica.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// Votes wait long: replica2's prepare is held back on purpose while replica1's gid is rolled back.
const clusters = useAttached(criticalSetup({ voteTimeoutMs: 60_000 }));

/** The counter of gids that did not land on `replica`, from /metrics (null: no such series). */
async function notLanded(port: number, replica: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`lockstep_replica_commits_not_landed_total{replica="${replica}"}`));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function replica1Status(): Promise<LockstepStatus['replicas'][number] | undefined> {
  const run = await lockstep(['status', '--config', clusters.configFile, '--json']);
  return (JSON.parse(run.stdout) as LockstepStatus).replicas[0];
}

describe('a round gid rolled back outside lockstep on one replica, under a running sidecar', () => {
  it('is counted per replica and named in its status error until it applies again', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const port = await freePort();
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_HTTP_PORT: String(port),
    });
    try {
      await eventually(async () => (await notLanded(port, 'replica1')) === 0, 'the counter at 0');
      // replica2 cannot prepare until released: the round waits for its vote.
      const releaseR2 = await lockTable(r2, 'accounts');
      let releaseR1: (() => Promise<void>) | null = null;
      try {
        await clusters.primary.query('INSERT INTO accounts VALUES (1, 100)');
        await eventually(
          async () => (await preparedGids([r1])).length === 1,
          "replica1's prepared round",
        );
        const [gid] = (await preparedGids([r1])).map((g) => g.slice(g.indexOf(':') + 1));
        await r1.query(`ROLLBACK PREPARED '${gid}'`);
        // replica1 cannot apply the round again while this holds: its error stays to be seen.
        releaseR1 = await lockTable(r1, 'accounts');
        await releaseR2();
        await eventually(
          async () => (await notLanded(port, 'replica1')) === 1,
          'commits_not_landed_total{replica1} to be 1',
        );
        expect(await notLanded(port, 'replica2')).toBe(0);
        expect(sidecar.logEvent('commit-not-landed', { replica: 'replica1', gid })).toBeDefined();
        await eventually(
          async () => /neither prepared nor committed/.test((await replica1Status())?.error ?? ''),
          "replica1's status error to name the gid that did not land",
        );
        const status = await replica1Status();
        expect(status?.error).toContain(`gid ${gid} is neither prepared nor committed`);
        expect(status?.errorAt).not.toBeNull();
      } finally {
        await releaseR2();
        await releaseR1?.();
      }
      // Applied again: the error is over, the rows are everywhere, nothing is left prepared.
      await eventually(
        async () => (await replica1Status())?.error === null,
        "replica1's error to clear once it applies again",
      );
      await expectIdentical(clusters.primary, clusters.replicas, ['accounts']);
      expect(await notLanded(port, 'replica1')).toBe(1);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  }, 120_000);
});
