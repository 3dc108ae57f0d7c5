import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { appliedVersion, expectIdentical } from '../support/compare-nodes.js';
import { useReplication } from '../support/lockstep-transport.js';
import { NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { expectRetainedBelow, walLsn, walSince, writeNoise } from '../support/retained-wal.js';

const MAX_LAG = 256 * 1024;
const replication = useReplication('bus', {
  replicas: 2,
  schema: NUMBERED_SCHEMA,
  config: {
    maxLagBytes: MAX_LAG,
    // `noise` (writeNoise) is the primary's own: unreplicated WAL.
    tables: ['public.t', 'public.marker'],
  },
});

function replica(index: number): PostgresCluster {
  return replication.replicas[index] as PostgresCluster;
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
    const { primary } = replication;
    replication.start();
    let next = await writeRows(primary, 1, 1);
    await replication.converged();
    await replication.kill('replica2');
    const left = await appliedVersion(replica(1));
    next = await writeRows(primary, next, 12 * MAX_LAG);
    await writeNoise(primary, 12 * MAX_LAG);
    next = await writeRows(primary, next, 4 * MAX_LAG);
    await writeNoise(primary, 4 * MAX_LAG);
    // The killed agent holds nothing on the primary: JetStream keeps its packets.
    await expectRetainedBelow(primary, 4 * MAX_LAG);
    expect(await appliedVersion(replica(1))).toBe(left);
    expect(await appliedVersion(replica(0))).toBeGreaterThan(left);

    replication.start();
    await replication.converged();
    await expectIdentical(primary, replication.replicas, ['t', 'marker']);
    // It read the bus from the version after its own: no resync, nothing skipped.
    await replication
      .applier('replica2')
      .untilEvent('bus-reading', { replica: 'replica2', version: left });
    expect(replication.coordinator.logEvent('replica-stale')).toBeUndefined();
  });
});
