import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/** Table and settings of the resync tests: a lag limit a replica down for a moment passes. */
export const RESYNC_SCHEMA = `CREATE TABLE parent (id int PRIMARY KEY, v text);
                              CREATE TABLE marker (id bigserial PRIMARY KEY);`;
export const RESYNC_EXTRA = { maxLagBytes: 256 * 1024, resync: 'auto' };

/** Returns a writer of about 400 kB of WAL into `parent` per call: past `RESYNC_EXTRA`'s maxLagBytes. */
export function lagWriter(primary: () => PostgresCluster): () => Promise<void> {
  let next = 1;
  return async () => {
    const from = next;
    next += 3_000;
    await primary().query(
      `INSERT INTO parent SELECT g, repeat(md5(g::text), 4) FROM generate_series(${from}, ${next - 1}) g`,
    );
  };
}
