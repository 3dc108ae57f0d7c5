import { describe, expect, it } from 'vitest';
import type { LockstepConfig } from '../../plugin/config/config-schema.js';
import type {
  LockstepCluster,
  PrimarySession,
  ReplicaSession,
} from '../../plugin/ports/lockstep-cluster.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { StreamHead } from '../../plugin/ports/streams-store.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { readStatus } from '../../plugin/status/read-status.js';

const config = {
  slot: 'lockstep',
  primary: 'postgres://primary/db',
  replicas: [
    { name: 'replica1', url: 'postgres://replica1/db' },
    { name: 'replica2', url: 'postgres://replica2/db' },
  ],
} as unknown as LockstepConfig;

const head: StreamHead = {
  version: 10,
  lsn: toLsn('0/100'),
  commitTime: new Date('2026-01-01T00:00:10Z'),
  walLsn: toLsn('0/200'),
  twoPhase: null,
  activeSidecar: 'host:1',
  activeSince: new Date('2026-01-01T00:00:00Z'),
  pausedAt: null,
};

/** A cluster answering from memory: the primary's stream head, replica1 at version 7, replica2 down. */
function fakeCluster(streamHead: StreamHead | undefined): LockstepCluster {
  const primary = {
    streams: { head: async () => streamHead },
    streamLockHeld: async () => true,
    replicaStatus: {
      notes: async () => [{ replica: 'replica2', state: 'stale', error: null, errorAt: null }],
    },
    slots: { health: async () => null },
    joinHolds: { read: async () => [] },
    preparedGids: async () => [],
    close: async () => undefined,
  } as unknown as PrimarySession;
  const replica1 = {
    positions: {
      read: async () => ({
        version: 7,
        lsn: toLsn('0/80'),
        commitTime: new Date('2026-01-01T00:00:04Z'),
      }),
    },
    preparedGids: async () => [{ gid: 'g', preparedAt: '2026-01-01T00:00:00Z', ageSeconds: 2.4 }],
    close: async () => undefined,
  } as unknown as ReplicaSession;
  return {
    primary: async () => primary,
    replica: async (name: string) => {
      if (name === 'replica1') return replica1;
      throw new LockstepError({ node: name, problem: 'cannot connect', fix: 'start it' });
    },
  } as unknown as LockstepCluster;
}

describe('readStatus', () => {
  it("reads each replica's lag against the stream head, and keeps a down replica's stale mark", async () => {
    const status = await readStatus(fakeCluster(head), config);
    expect(status.primary).toMatchObject({ version: 10, walLsn: '0/200', reachable: true });
    expect(status.sidecar).toEqual({
      active: 'host:1',
      since: '2026-01-01T00:00:00.000Z',
      running: true,
    });
    expect(status.replicas[0]).toMatchObject({
      name: 'replica1',
      version: 7,
      lagVersions: 3,
      lagBytes: 0x180,
      lagSeconds: 6,
    });
    expect(status.replicas[1]).toMatchObject({
      name: 'replica2',
      state: 'stale',
      reachable: false,
    });
    expect(status.inDoubt).toEqual([
      { node: 'replica1', gid: 'g', preparedAt: '2026-01-01T00:00:00Z', ageSeconds: 2 },
    ]);
  });

  it('names the missing stream when the primary has none', async () => {
    const status = await readStatus(fakeCluster(undefined), config);
    expect(status.primary.error).toMatch(/not attached/);
    expect(status.primary.version).toBeNull();
    expect(status.replicas[0]).toMatchObject({ version: 7, lagVersions: null });
  });
});
