import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';

/** A pg_lsn's text (`16/B374D848`) as one number of bytes. */
export const lsnBytes = (lsn: string): bigint => {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
};

export function percentile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Every `everyMs`, runs `step` until stopped; resolves when the loop has ended. */
function loop(everyMs: number, step: () => Promise<void>) {
  let running = true;
  const done = (async () => {
    while (running) {
      await step();
      await sleep(everyMs);
    }
  })();
  return async () => {
    running = false;
    await done;
  };
}

/**
 * Per-replica lag while pgbench runs, in ms. The primary's commit stream is
 * sampled as (time, pg_current_wal_lsn()) every 25 ms; each replica's
 * `lockstep.applied.lsn` every 200 ms. A replica sampled at t holding L lags
 * by t minus the first primary sample past L (the primary had committed
 * something the replica lacks since then), 0 when none is: the time its
 * oldest missing commit has waited, to within the 25 ms sampling and the gap
 * between two pgbench commits.
 */
export async function sampleLag(primary: PostgresCluster, replicas: readonly PostgresCluster[]) {
  const timeline: [number, bigint][] = [];
  const lags = replicas.map(() => [] as number[]);
  const clients = [primary, ...replicas].map((n) => new pg.Client({ connectionString: n.url }));
  await Promise.all(clients.map((c) => c.connect()));
  const [head, ...each] = clients as [pg.Client, ...pg.Client[]];
  const stopPrimary = loop(25, async () => {
    const { rows } = await head.query('SELECT pg_current_wal_lsn()::text AS l');
    timeline.push([performance.now(), lsnBytes(rows[0].l)]);
  });
  const lagAt = (t: number, held: bigint): number => {
    // Binary search: the first sample past `held`.
    let [lo, hi] = [0, timeline.length];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((timeline[mid] as [number, bigint])[1] > held) hi = mid;
      else lo = mid + 1;
    }
    const first = timeline[lo];
    return first && first[0] < t ? t - first[0] : 0;
  };
  const stopReplicas = each.map((client, i) =>
    loop(200, async () => {
      const { rows } = await client.query('SELECT lsn::text AS l FROM lockstep.applied');
      const t = performance.now();
      if (rows[0]) lags[i]?.push(lagAt(t, lsnBytes(rows[0].l)));
    }),
  );
  return async (): Promise<number[][]> => {
    await Promise.all([stopPrimary(), ...stopReplicas.map((stop) => stop())]);
    await Promise.all(clients.map((c) => c.end()));
    return lags;
  };
}
