import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';

/** WAL the `lockstep` slot keeps on the primary: bytes from its restart point to the end of WAL. */
export async function retainedBytes(primary: PostgresCluster): Promise<number> {
  const [row] = await primary.query<{ bytes: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS bytes
       FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
  );
  return Number(row?.bytes);
}

/** The `lockstep` slot's `confirmed_flush_lsn`: one past the last position its consumer confirmed. */
export async function slotConfirmedLsn(primary: PostgresCluster): Promise<string> {
  const [row] = await primary.query<{ lsn: string }>(
    "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'",
  );
  return row?.lsn ?? '0/0';
}

export async function walLsn(node: PostgresCluster): Promise<string> {
  const [row] = await node.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return row?.lsn as string;
}

/** Bytes of WAL written on `node` since `from`. */
export async function walSince(node: PostgresCluster, from: string): Promise<number> {
  const [row] = await node.query<{ bytes: string }>(
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint::text AS bytes',
    [from],
  );
  return Number(row?.bytes);
}

/**
 * At least `bytes` of WAL on table `noise` (created here, in no publication), in
 * transactions of `rows` rows of `width` × 32 characters (by default ~200 kB each).
 */
export async function writeNoise(
  primary: PostgresCluster,
  bytes: number,
  { rows = 1000, width = 4 }: { rows?: number; width?: number } = {},
): Promise<void> {
  await primary.query('CREATE TABLE IF NOT EXISTS noise (id bigserial, filler text)');
  const start = await walLsn(primary);
  while ((await walSince(primary, start)) < bytes)
    await primary.query(
      'INSERT INTO noise (filler) SELECT repeat(md5(g::text), $1) FROM generate_series(1, $2) g',
      [width, rows],
    );
}

/** Waits until the slot keeps less than `limit` bytes; a CHECKPOINT each time lets its restart point move. */
export async function expectRetainedBelow(primary: PostgresCluster, limit: number): Promise<void> {
  await eventually(
    async () => {
      await primary.query('CHECKPOINT');
      return (await retainedBytes(primary)) < limit;
    },
    `the slot to retain less than ${limit} bytes`,
    90_000,
  );
}
