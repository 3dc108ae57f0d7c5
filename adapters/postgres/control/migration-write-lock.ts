import type pg from 'pg';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';

/**
 * A data migration converges only if the rows its statements read on the
 * primary are the rows every replica holds when it runs them at the barrier.
 * So before its first statement the primary's migration keeps writers out of
 * every table it will touch — SHARE ROW EXCLUSIVE on those it writes, SHARE
 * on those it only reads — held by the prepared transaction until the round
 * ends: every write the replicas apply before the barrier is one the
 * primary's statements saw, and none comes after. Which tables: a dry run
 * (rolled back) tells, from the locks it took (a statement that changes no
 * row, a TRUNCATE and every partition an UPDATE may reach lock all the
 * same); the real run then checks it touched no other existing table, or the
 * round is refused with nothing changed.
 */

/** Ordinary tables this transaction has locked so far (lockstep's own and the catalogs excepted), and whether to write. */
const TOUCHED = `
  SELECT l.relation::int AS oid,
         bool_or(l.mode NOT IN ('AccessShareLock', 'RowShareLock')) AS writes
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
     AND c.relkind IN ('r', 'p')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'lockstep')
   GROUP BY l.relation`;

/** What a migration touches: tables it writes and tables it only reads. */
export interface TouchedTables {
  readonly writes: readonly number[];
  readonly reads: readonly number[];
}

async function touched(client: pg.ClientBase): Promise<TouchedTables> {
  const { rows } = await client.query<{ oid: number; writes: boolean }>(TOUCHED);
  return {
    writes: rows.filter((r) => r.writes).map((r) => r.oid),
    reads: rows.filter((r) => !r.writes).map((r) => r.oid),
  };
}

/** Runs `step` in a transaction that is rolled back, and returns the tables it touched. */
export async function tablesTouchedBy(
  client: pg.ClientBase,
  prepare: () => Promise<void>,
  step: () => Promise<void>,
): Promise<TouchedTables> {
  await client.query('BEGIN');
  try {
    await prepare();
    await step();
    return await touched(client);
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Locks those of `oids` that still exist (a dry run's new tables do not) in `mode`. */
async function lockExisting(
  client: pg.ClientBase,
  oids: readonly number[],
  mode: string,
): Promise<void> {
  if (oids.length === 0) return;
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.oid = ANY($1::oid[]) ORDER BY c.oid`,
    [oids],
  );
  if (rows.length)
    await client.query(`LOCK TABLE ${rows.map((r) => r.name).join(', ')} IN ${mode} MODE`);
}

/** Keeps writers out of every table of `tables` (writers to them wait until the round ends). */
export async function lockTouched(client: pg.ClientBase, tables: TouchedTables): Promise<void> {
  await lockExisting(client, tables.writes, 'SHARE ROW EXCLUSIVE');
  await lockExisting(client, tables.reads, 'SHARE');
}

/** The user tables that exist now (the real run's own new tables need no lock). */
export async function existingTables(client: pg.ClientBase): Promise<Set<number>> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT oid::int AS oid FROM pg_class WHERE relkind IN ('r', 'p')`,
  );
  return new Set(rows.map((r) => r.oid));
}

/** Refuses the round when the real run touched an existing table its dry run did not. */
export async function requireTouchedLocked(
  client: pg.ClientBase,
  locked: TouchedTables,
  existedBefore: ReadonlySet<number>,
): Promise<void> {
  const now = await touched(client);
  const held = new Set([...locked.writes, ...locked.reads]);
  const unlocked = [...now.writes, ...now.reads].filter(
    (oid) => existedBefore.has(oid) && !held.has(oid),
  );
  if (unlocked.length === 0) return;
  const { rows: names } = await client.query<{ name: string }>(
    'SELECT oid::regclass::text AS name FROM unnest($1::oid[]) AS oid',
    [unlocked],
  );
  throw new LockstepError({
    node: 'primary',
    table: names.map((n) => n.name).join(', '),
    problem:
      'the migration touched a table its dry run did not (what it touches depends on the data): its statements there could see other rows than the replicas',
    fix: 'run it again; if it recurs, make the set of tables it reads and writes independent of the data',
  });
}
