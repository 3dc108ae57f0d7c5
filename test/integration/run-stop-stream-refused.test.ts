import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../plugin/support/sleep.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A stop is most likely to find the sidecar in a long backoff: its stream has been refused for
// a while (here: another walsender holds the slot, as a previous sidecar's does until
// wal_sender_timeout). The stop must end that wait, not sleep it out, nor be cut short by
// run's 10 s exit, which leaves without closing what it holds.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
  config: { retry: { initialMs: 500, maxMs: 120_000 } },
});

/** The exit code, or 'running' when the process has not ended 20 s after the signal (it promises 10 s). */
const endedWithin20s = (run: LockstepProcess) =>
  Promise.race([run.closed, sleep(20_000).then(() => 'running' as const)]);

/** A replication connection streaming from lockstep's slot: nobody else can use it meanwhile. */
async function holdSlot(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    replication: 'database',
  } as pg.ClientConfig);
  client.on('error', () => undefined);
  await client.connect();
  client
    .query(
      `START_REPLICATION SLOT lockstep LOGICAL 0/0 (proto_version '1', publication_names 'lockstep')`,
    )
    .catch(() => undefined);
  return client;
}

describe('lockstep run stopped while its stream is refused', () => {
  it('ends its reconnect wait and stops cleanly on SIGTERM', async () => {
    const { primary } = clusters;
    const holder = await holdSlot(primary.url);
    const run = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(
        async () =>
          (await primary.query(`SELECT 1 FROM pg_replication_slots WHERE active`)).length === 1,
        'the slot held',
      );
      // Six refusals in a row: the stream's next attempt is 16 s away, past run's 10 s exit.
      await eventually(
        async () => run.events('stream-refused').length >= 6,
        'six refused stream attempts',
        120_000,
      );
      run.kill('SIGTERM');
      const ended = await endedWithin20s(run);
      if (ended === 'running') run.kill('SIGKILL');
      expect(ended, run.output).toBe(0);
      // Logged only once every part has closed: a stop cut short by the 10 s exit does not log it.
      expect(run.events('stopped'), run.output).toHaveLength(1);
    } finally {
      run.kill('SIGKILL');
      await holder.end().catch(() => undefined);
    }
  });
});
