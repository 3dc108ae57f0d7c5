import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { type AttachProgress, attach } from '../../plugin/attach/attach.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { DeposedError, LockstepError } from '../../plugin/ports/lockstep-error.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE t (id int PRIMARY KEY, v text);',
  seed: 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;',
});
const quiet: AttachProgress = { table: () => undefined, step: () => undefined };

/** What a resync would change on replica2: its rows and its position. */
async function replica2State(): Promise<string> {
  const r2 = clusters.replicas[1];
  if (!r2) throw new Error('no replica2');
  const rows = await r2.query<{ n: string; v: string; lsn: string }>(
    `SELECT (SELECT count(*) FROM t)::text AS n,
            (SELECT version::text FROM lockstep.applied WHERE stream = 'lockstep') AS v,
            (SELECT lsn::text FROM lockstep.applied WHERE stream = 'lockstep') AS lsn`,
  );
  return JSON.stringify(rows[0]);
}

async function rejection(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => null,
    (error: unknown) => error,
  );
}

const markStale = () =>
  clusters.primary.query(
    `INSERT INTO lockstep.replica_status (stream, replica, state, stale_since)
       VALUES ('lockstep', 'replica2', 'stale', now())
     ON CONFLICT (stream, replica) DO UPDATE SET stale_since = now()`,
  );
const staleSince = async () =>
  (
    await clusters.primary.query<{ since: string | null }>(
      `SELECT stale_since::text AS since FROM lockstep.replica_status
        WHERE stream = 'lockstep' AND replica = 'replica2'`,
    )
  )[0]?.since ?? null;

describe('two resyncs of one replica never interleave, and a deposed sidecar resyncs nothing', () => {
  // A row only replica2 has: any reset of replica2 would remove it.
  beforeAll(() => clusters.replicas[1]?.query("INSERT INTO t VALUES (-1, 'replica2 only')"));

  it('a resync while another process holds the replica resync lock is refused and changes nothing', async () => {
    const config = loadConfig(clusters.configFile);
    const other = new pg.Client({ connectionString: clusters.replicas[1]?.url });
    await other.connect();
    try {
      await other.query(
        "SELECT pg_advisory_lock(hashtext('lockstep.resync'), hashtext('lockstep'))",
      );
      const before = await replica2State();
      const refused = await rejection(
        attach(postgresCluster(), config, quiet, { resync: ['replica2'], sidecarRunsResync: true }),
      );
      expect(refused).toBeInstanceOf(LockstepError);
      expect((refused as LockstepError).node).toBe('replica2');
      expect((refused as LockstepError).message).toMatch(/resync lock/);
      expect(await replica2State()).toBe(before);
    } finally {
      await other.end();
    }
  });

  it('a sidecar that lost the coordinator lock does not empty the replica', async () => {
    const config = loadConfig(clusters.configFile);
    const before = await replica2State();
    const refused = await rejection(
      attach(postgresCluster(), config, quiet, {
        resync: ['replica2'],
        sidecarRunsResync: true,
        holder: { epoch: () => 3, verify: async () => false },
      }),
    );
    expect(refused).toBeInstanceOf(DeposedError);
    expect(await replica2State()).toBe(before);
  });

  it('a resync finished under an epoch that is no longer current leaves the stale mark to the successor', async () => {
    const config = loadConfig(clusters.configFile);
    await markStale();
    // Two activations: the first one's epoch is the deposed one.
    const epochs: number[] = [];
    for (let i = 0; i < 2; i++) {
      const lock = new StreamLock(config.primary, 'lockstep');
      expect(await lock.tryAcquire()).toBe(true);
      epochs.push(lock.epoch as number);
      await lock.release();
    }
    const [deposed, epoch] = epochs as [number, number];
    expect(epoch).toBeGreaterThan(deposed);
    const late = await rejection(
      attach(postgresCluster(), config, quiet, {
        resync: ['replica2'],
        sidecarRunsResync: true,
        // It held the lock when it started; a successor took over before it finished.
        holder: { epoch: () => deposed, verify: async () => true },
      }),
    );
    expect(late).toBeInstanceOf(DeposedError);
    expect(await staleSince()).not.toBeNull();

    // The current holder's resync ends the mark, and the copy is whole.
    const done = await attach(postgresCluster(), config, quiet, {
      resync: ['replica2'],
      sidecarRunsResync: true,
      holder: { epoch: () => epoch, verify: async () => true },
    });
    expect(done.copied.filter((c) => c.replica === 'replica2')).toEqual([
      { replica: 'replica2', table: 'public.t', rows: 500 },
    ]);
    expect(await staleSince()).toBeNull();
    expect(JSON.parse(await replica2State()).n).toBe('500');
    expect(await clusters.replicas[1]?.query('SELECT * FROM t WHERE id = -1')).toEqual([]);
  });

  it('a resync whose replica lock session dies before the reset empties nothing', async () => {
    const config = loadConfig(clusters.configFile);
    const r2 = clusters.replicas[1];
    if (!r2) throw new Error('no replica2');
    await r2.query("INSERT INTO t VALUES (-2, 'replica2 only') ON CONFLICT DO NOTHING");
    const before = await replica2State();
    const failed = await rejection(
      attach(postgresCluster(), config, quiet, {
        resync: ['replica2'],
        sidecarRunsResync: true,
        // The coordinator check passes; meanwhile a DBA ends the resync lock's session.
        holder: {
          epoch: () => 0,
          verify: async () => {
            await r2.query(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lockstep-resync'",
            );
            return true;
          },
        },
      }),
    );
    expect(failed).toBeInstanceOf(Error);
    expect(await replica2State()).toBe(before);
  });

  it('a manual resync is refused while a sidecar holds the coordinator lock, and changes nothing', async () => {
    const config = loadConfig(clusters.configFile);
    const lock = new StreamLock(config.primary, 'lockstep');
    expect(await lock.tryAcquire()).toBe(true);
    try {
      const before = await replica2State();
      const refused = await rejection(
        attach(postgresCluster(), config, quiet, { resync: ['replica2'] }),
      );
      expect(refused).toBeInstanceOf(LockstepError);
      expect((refused as LockstepError).message).toMatch(/coordinator lock/);
      expect(await replica2State()).toBe(before);
    } finally {
      await lock.release();
    }
  });
});
