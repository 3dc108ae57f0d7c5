import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { checkPrimaryPrerequisites } from '../../adapters/postgres/setup/primary-prerequisites.js';
import { createReplicationSlot } from '../../adapters/postgres/source/replication-slot.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { clusterProvider } from '../harness/clusters.js';
import { createFeed, openStream } from '../support/stream-session.js';

let noLogical: PostgresCluster;
let oneSlot: PostgresCluster;

beforeAll(async () => {
  const provider = await clusterProvider();
  [noLogical, oneSlot] = await Promise.all([
    provider.start({ role: 'primary', name: 'no-logical', settings: { wal_level: 'replica' } }),
    provider.start({ role: 'primary', name: 'one-slot', settings: { max_replication_slots: 1 } }),
  ]);
});
afterAll(async () => {
  await Promise.all([noLogical?.destroy(), oneSlot?.destroy()]);
});

async function problems(url: string, needFreeSlot = false): Promise<LockstepError[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await checkPrimaryPrerequisites(client, { needFreeSlot });
  } finally {
    await client.end();
  }
}

async function rejection(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

describe('primary prerequisites (real Postgres)', () => {
  it('names wal_level and the fix when the primary is not logical', async () => {
    const [problem] = await problems(noLogical.url);
    expect(problem).toMatchObject({ node: 'primary', setting: 'wal_level' });
    expect(problem?.message).toMatch(/wal_level is 'replica'/);
    expect(problem?.fix).toMatch(/ALTER SYSTEM SET wal_level = 'logical'.*restart/);

    const error = await rejection(createReplicationSlot(noLogical.url, 'wants_logical'));
    expect(error.setting).toBe('wal_level');
    expect(error.message).toMatch(/fix: run ALTER SYSTEM SET wal_level/);
  });

  it('names max_replication_slots and the fix when no slot is free', async () => {
    expect(await problems(oneSlot.url, true)).toEqual([]);
    const taken = await createReplicationSlot(oneSlot.url, 'the_only_slot');
    expect(taken.consistentPoint).toMatch(/\//);
    const [problem] = await problems(oneSlot.url, true);
    expect(problem).toMatchObject({ setting: 'max_replication_slots' });
    expect(problem?.fix).toMatch(/raise max_replication_slots.*pg_drop_replication_slot/);

    const error = await rejection(createReplicationSlot(oneSlot.url, 'one_too_many'));
    expect(error.setting).toBe('max_replication_slots');
    expect(error.message).toMatch(/no free replication slot/);
    await oneSlot.query(`SELECT pg_drop_replication_slot('the_only_slot')`);
  });

  it('names the REPLICATION privilege and the fix for a role without it', async () => {
    await oneSlot.query('CREATE ROLE plain_app LOGIN');
    await oneSlot.query('CREATE TABLE priv_t (id int PRIMARY KEY)');
    const url = oneSlot.urlFor({ user: 'plain_app' });
    const [problem] = await problems(url);
    expect(problem).toMatchObject({ setting: 'REPLICATION privilege' });
    expect(problem?.fix).toBe('as a superuser run: ALTER ROLE "plain_app" REPLICATION');

    // The stream itself refuses with the same explanation.
    const feed = await createFeed(oneSlot.url, [{ schema: 'public', name: 'priv_t' }]);
    try {
      const error = await rejection(openStream(url, feed, { version: 0, lsn: feed.start }));
      expect(error.setting).toBe('REPLICATION privilege');
      expect(error.message).toMatch(/ALTER ROLE .* REPLICATION/);
    } finally {
      await feed.drop();
    }
  });

  it('explains a missing slot when streaming', async () => {
    const error = await rejection(
      openStream(
        oneSlot.url,
        { slot: 'no_such_slot', publication: 'no_such_pub' },
        { version: 0, lsn: '0/0' as never },
      ),
    );
    expect(error.message).toMatch(/does not exist/);
    expect(error.fix).toMatch(/lockstep attach/);
  });
});
