import { describe, expect, it } from 'vitest';
import { holdInTransaction } from '../support/frozen-replica.js';
import { lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { waitingOnLock } from '../support/waiting-sessions.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE t (id int PRIMARY KEY, v text);',
  seed: 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g;',
});

/** Far beyond the steps' deadline (applyTimeoutMs): a run still going then hangs (and is stopped). */
const HANG_MS = 90_000;

// Attach again (a deploy script's idempotent step) reads and tidies lockstep's rows on the
// primary. A session holding one of those tables (CREATE INDEX takes SHARE, an open
// transaction's LOCK TABLE) made it wait for ever; the wait must end, naming the primary, the
// step and the fix, with no backend left waiting behind it.
describe('attach again while a session holds a control table on the primary', () => {
  it('names the primary, the step and the fix; attach again succeeds once it is free', async () => {
    const { primary } = clusters;
    const holder = await holdInTransaction(primary, 'LOCK TABLE lockstep.join_holds IN SHARE MODE');
    try {
      const refused = await lockstep(['attach', '--config', clusters.configFile], {}, HANG_MS);
      expect(refused.code, refused.output).toBe(1);
      expect(refused.output).toMatch(
        /\[primary\] dropping the join holds of placed replicas .*failed: a lock it needs was not granted within lock_timeout/,
      );
      expect(refused.output).toMatch(/fix: find the session on the primary .*pg_locks/);
      expect(await waitingOnLock(primary, 'lockstep')).toEqual([]);
    } finally {
      await holder.release();
    }
    const again = await lockstep(['attach', '--config', clusters.configFile], {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toMatch(/already attached .*nothing to do/);
  });
});
