import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AttachProgress, attach } from '../../plugin/attach/attach.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { DeposedError, LockstepError } from '../../plugin/lockstep-error.js';
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
    const other = new pg.Client({ connectionString: config.replicas[1]?.url });
    await other.connect();
    try {
      await other.query(
        "SELECT pg_advisory_lock(hashtext('lockstep.resync'), hashtext('lockstep'))",
      );
      const before = await replica2State();
      const refused = await rejection(
        attach(config, quiet, { resync: ['replica2'], sidecarRunsResync: true }),
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
      attach(config, quiet, {
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
    const [{ epoch } = { epoch: '0' }] = await clusters.primary.query<{ epoch: string }>(
      "SELECT epoch::text FROM lockstep.streams WHERE stream = 'lockstep'",
    );
    const deposed = Number(epoch) + 1;
    const late = await rejection(
      attach(config, quiet, {
        resync: ['replica2'],
        sidecarRunsResync: true,
        // It held the lock when it started; a successor took over before it finished.
        holder: { epoch: () => deposed, verify: async () => true },
      }),
    );
    expect(late).toBeInstanceOf(DeposedError);
    expect(await staleSince()).not.toBeNull();

    // The current holder's resync ends the mark, and the copy is whole.
    const done = await attach(config, quiet, {
      resync: ['replica2'],
      sidecarRunsResync: true,
      holder: { epoch: () => Number(epoch), verify: async () => true },
    });
    expect(done.copied.filter((c) => c.replica === 'replica2')).toEqual([
      { replica: 'replica2', table: 'public.t', rows: 500 },
    ]);
    expect(await staleSince()).toBeNull();
    expect(JSON.parse(await replica2State()).n).toBe('500');
    expect(await clusters.replicas[1]?.query('SELECT * FROM t WHERE id = -1')).toEqual([]);
  });
});
