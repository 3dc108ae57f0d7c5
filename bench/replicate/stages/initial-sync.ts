import { sleep } from '../../../plugin/support/sleep.js';
import { mark, waitOnAll } from '../../support/bench-cluster.js';
import { LAUNCHER_WAIT_MS } from '../knobs.js';
import { check, type Rig, record } from '../rig.js';

const now = () => performance.now();

/**
 * (a) initial sync end to end, as a user times it: from the first command
 * (CREATE PUBLICATION / SUBSCRIPTION, `lockstep attach` + `run`, pglogical's
 * nodes and subscriptions, `pgcopydb clone`) until every row of every table
 * is on both replicas and, for a streaming system, a row written after its
 * copy reported done is on both too (lockstep: the sidecar started and caught
 * up). Every system copies the same tables: pgbench's four, `wide` (TOAST
 * values) and the empty `bulk` and `nb_marker`.
 *
 * Why this bench once put native 4–5× slower than a shell does: its clusters
 * are copies of one initdb (same system identifier) and the replicas were
 * created alike (same subscription OID), so both replicas' table-sync
 * workers asked the primary for the same slot name
 * (pg_<subid>_sync_<relid>_<sysid>); one of each pair failed with "already
 * exists" and was restarted wal_retrieve_retry_interval (5 s) later. Scale
 * 10, pgbench's four tables: all synced at 6.4 s with the clash, 1.8 s
 * without. The native system now gives the second replica's subscription
 * another OID (systems/native.ts), as separately made replicas have. More
 * tables cost native less: at most 2 table-syncs run per subscription, and
 * one that is done waits for the idle apply worker's next wake-up (up to
 * 1 s) to be marked ready and free its place (all seven tables: 3.3 s, one
 * such 1 s wait). The end is each system's own "copy done"
 * (pg_subscription_rel states, pglogical's table status, attach's exit,
 * pgcopydb's exit) polled every 5 ms, and every system copies the same set.
 */
export async function initialSync(rig: Rig): Promise<void> {
  const { system, primary: p, replicas } = rig;
  console.error(`${system.name}: (a) initial sync of ${rig.rows.toLocaleString('en')} rows`);
  await Promise.all([p, ...replicas].map((c) => c.query('CHECKPOINT')));
  // Not timed: a launcher that started a worker less than
  // wal_retrieve_retry_interval ago would wait that out first.
  if (system.name === 'native') await sleep(LAUNCHER_WAIT_MS);
  await system.prepare?.(p, replicas);
  const t0 = now();
  await system.sync(p, replicas);
  if (system.replicating)
    await waitOnAll(replicas, `EXISTS (SELECT 1 FROM nb_marker WHERE id = ${await mark(p)})`);
  const seconds = (now() - t0) / 1000;
  record(rig, 'a_seconds', seconds);
  record(rig, 'a_rows_per_s', rig.rows / seconds);
  await check(rig, 'a');
}
