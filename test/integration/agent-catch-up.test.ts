import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { appliedVersion, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { expectRetainedBelow, walLsn, walSince, writeNoise } from '../support/retained-wal.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const MAX_LAG = 256 * 1024;
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 2,
  schema: NUMBERED_SCHEMA,
  config: {
    maxLagBytes: MAX_LAG,
    // `noise` (writeNoise) is the primary's own: unreplicated WAL.
    tables: ['public.t', 'public.marker'],
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

function replica(index: number): PostgresCluster {
  return clusters.replicas[index] as PostgresCluster;
}

const agent = (name: string) =>
  new LockstepProcess(['agent', '--config', clusters.configFile, '--replica', name]);

async function stopped(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

/** Rows into `t` from `from` on, 2,000 per transaction, until `bytes` of WAL were written; the next id. */
async function writeRows(primary: PostgresCluster, from: number, bytes: number): Promise<number> {
  const start = await walLsn(primary);
  let next = from;
  while ((await walSince(primary, start)) < bytes) {
    await primary.query(
      'INSERT INTO t SELECT g, g FROM generate_series($1::int, $1::int + 1999) g',
      [next],
    );
    next += 2_000;
  }
  return next;
}

describe('a replica whose agent was stopped while the primary wrote past maxLagBytes', () => {
  it('catches up from JetStream without a resync, the slot keeping little WAL meanwhile', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const first = agent('replica1');
    let second = agent('replica2');
    try {
      let next = await writeRows(clusters.primary, 1, 1);
      await waitForMarker(clusters.primary, clusters.replicas);
      await stopped(second);
      const left = await appliedVersion(replica(1));
      next = await writeRows(clusters.primary, next, 12 * MAX_LAG);
      await writeNoise(clusters.primary, 12 * MAX_LAG);
      next = await writeRows(clusters.primary, next, 4 * MAX_LAG);
      await writeNoise(clusters.primary, 4 * MAX_LAG);
      // The stopped agent holds nothing on the primary: JetStream keeps its packets.
      await expectRetainedBelow(clusters.primary, 4 * MAX_LAG);
      expect(await appliedVersion(replica(1))).toBe(left);
      expect(await appliedVersion(replica(0))).toBeGreaterThan(left);

      second = agent('replica2');
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      // It read the bus from the version after its own: no resync, nothing skipped.
      expect(second.logEvent('bus-reading', { replica: 'replica2', version: left })).toBeDefined();
      expect(publisher.logEvent('replica-stale')).toBeUndefined();
    } finally {
      await stopped(second);
      await stopped(first);
      await stopped(publisher);
    }
  });
});
