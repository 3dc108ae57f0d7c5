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
import { statusHealth } from '../../plugin/status/status-health.js';

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

const applied = (names: string[]) =>
  names.map((name) => ({ name, appliedAt: '2026-01-01T00:00:00Z' }));

/** A cluster answering from memory: the primary's stream head, replica1 at version 7, replica2 down. */
function fakeCluster(
  streamHead: StreamHead | undefined,
  histories: { primary: string[]; replica1: string[]; replica1Gids?: string[] } = {
    primary: [],
    replica1: [],
  },
): LockstepCluster {
  const primary = {
    streams: { head: async () => streamHead },
    streamLockHeld: async () => true,
    replicaStatus: {
      notes: async () => [{ replica: 'replica2', state: 'stale', error: null, errorAt: null }],
    },
    slots: { health: async () => null },
    joinHolds: { read: async () => [] },
    preparedGids: async () => [],
    migrationReading: async () => ({ migrations: applied(histories.primary), copiedAt: null }),
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
    preparedGids: async () =>
      (histories.replica1Gids ?? ['g']).map((gid) => ({
        gid,
        preparedAt: '2026-01-01T00:00:00Z',
        ageSeconds: 2.4,
      })),
    migrationReading: async () => ({ migrations: applied(histories.replica1), copiedAt: null }),
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

  it('reports a replica lacking a migration the primary has, naming it and the fix, until it has it', async () => {
    const lacking = { primary: ['001-a', '002-b'], replica1: ['001-a'] };
    const status = await readStatus(fakeCluster(head, lacking), config);
    expect(status.replicas[0]).toMatchObject({
      name: 'replica1',
      migrationsDiffer: true,
      missingMigrations: ['002-b'],
    });
    expect(status.replicas[0]?.error).toMatch(/^\[replica1\].*lacks migration 002-b/);
    expect(status.replicas[0]?.error).toContain('lockstep attach --resync replica1');
    expect(statusHealth(status).diverged).toEqual(['replica1']);
    const same = await readStatus(
      fakeCluster(head, { ...lacking, replica1: lacking.primary }),
      config,
    );
    expect(same.replicas[0]).toMatchObject({ migrationsDiffer: false, error: null });
  });

  it('does not judge a replica whose migration gid is still prepared (phase two not done)', async () => {
    const inFlight = {
      primary: ['001-a', '002-b'],
      replica1: ['001-a'],
      replica1Gids: ['lockstep_lockstep_m1700000000000_1'],
    };
    const status = await readStatus(fakeCluster(head, inFlight), config);
    expect(status.replicas[0]).toMatchObject({ migrationsDiffer: false, error: null });
  });
});
