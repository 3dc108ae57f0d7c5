import type pg from 'pg';
import { LockstepError } from '../../plugin/lockstep-error.js';

/**
 * A data migration converges only if the rows its statements read on the
 * primary are the rows every replica holds when it runs them at the barrier.
 * So before its first statement the primary's migration keeps writers out of
 * every table it will write (SHARE ROW EXCLUSIVE, held by the prepared
 * transaction until the round ends): every write the replicas apply before
 * the barrier is one the primary's statements saw. Which tables: a dry run
 * (rolled back) tells; the real run then checks it wrote no other existing
 * table, or the round is refused with nothing changed.
 */

/** Existing ordinary tables this transaction has written so far (lockstep's own excepted). */
const WRITTEN = `
  SELECT s.relid::int AS oid FROM pg_stat_xact_user_tables s
   WHERE s.schemaname <> 'lockstep' AND (s.n_tup_ins + s.n_tup_upd + s.n_tup_del) > 0`;

/** Runs `step` in a transaction that is rolled back, and returns the tables it wrote. */
export async function tablesWrittenBy(
  client: pg.ClientBase,
  prepare: () => Promise<void>,
  step: () => Promise<void>,
): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await prepare();
    await step();
    const { rows } = await client.query<{ oid: number }>(WRITTEN);
    return rows.map((r) => r.oid);
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Takes the write lock on those of `oids` that still exist (a dry run's new tables do not). */
export async function lockWrites(
  client: pg.ClientBase,
  oids: readonly number[],
): Promise<number[]> {
  if (oids.length === 0) return [];
  const { rows } = await client.query<{ oid: number; name: string }>(
    `SELECT c.oid::int AS oid, c.oid::regclass::text AS name FROM pg_class c
      WHERE c.oid = ANY($1::oid[]) ORDER BY c.oid`,
    [oids],
  );
  if (rows.length)
    await client.query(
      `LOCK TABLE ${rows.map((r) => r.name).join(', ')} IN SHARE ROW EXCLUSIVE MODE`,
    );
  return rows.map((r) => r.oid);
}

/** The user tables that exist now (the real run's writes to tables it created itself need no lock). */
export async function existingTables(client: pg.ClientBase): Promise<Set<number>> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT oid::int AS oid FROM pg_class WHERE relkind IN ('r', 'p')`,
  );
  return new Set(rows.map((r) => r.oid));
}

/** Refuses the round when the real run wrote an existing table its dry run did not. */
export async function requireWritesLocked(
  client: pg.ClientBase,
  locked: readonly number[],
  existedBefore: ReadonlySet<number>,
): Promise<void> {
  const { rows } = await client.query<{ oid: number }>(WRITTEN);
  const held = new Set(locked);
  const unlocked = rows.filter((r) => existedBefore.has(r.oid) && !held.has(r.oid));
  if (unlocked.length === 0) return;
  const { rows: names } = await client.query<{ name: string }>(
    'SELECT oid::regclass::text AS name FROM unnest($1::oid[]) AS oid',
    [unlocked.map((r) => r.oid)],
  );
  throw new LockstepError({
    node: 'primary',
    table: names.map((n) => n.name).join(', '),
    problem:
      'the migration wrote a table its dry run did not (what it writes depends on the data): its writes there could differ from the replicas',
    fix: 'run it again; if it recurs, make the set of tables it writes independent of the data',
  });
}
