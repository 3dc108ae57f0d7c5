import { Kysely, PostgresAdapter, PostgresDialect, type PostgresPool } from 'kysely';
import { CONTROL_MIGRATION_NAMES } from '../../../migrations/names.js';
import { namedLockWait } from '../connection/lock-wait.js';
import { connectBounded, dropClient, endClient } from '../connection/node-connection.js';
import { controlLockWaitMs } from '../connection/session-bounds.js';
import type { ControlDb, ControlSession, LockstepSchema } from './lockstep-schema.js';

/** The schema holding lockstep's own tables on every node. */
export const CONTROL_SCHEMA = 'lockstep';

/**
 * A Kysely handle over one session a caller already holds (the lock's
 * session, or one inside an open transaction): every query runs on it, and
 * destroying the handle leaves the session open.
 */
export function controlDbOn(session: ControlSession): ControlDb {
  const pool: PostgresPool = {
    connect: async () =>
      ({
        query: (text: string, values: readonly unknown[]) => session.query(text, [...values]),
        release: () => undefined,
      }) as unknown as Awaited<ReturnType<PostgresPool['connect']>>,
    end: async () => undefined,
  };
  return new Kysely<LockstepSchema>({ dialect: new PostgresDialect({ pool }) });
}

/** How long one statement of a control schema upgrade waits for a lock on a control table. */
const UPGRADE_LOCK_WAIT_MS = 2_000;

/**
 * The control schema's session: its lock waits (the creators' advisory lock,
 * the upgrade's ACCESS EXCLUSIVE on control tables another session uses) end
 * on the server before the deadline with their own error (55P03), a
 * transaction it leaves idle ends after 10 s, and from PostgreSQL 14 its
 * backend ends once the client gave up: no upgrade waits on, or commits,
 * after its process stopped waiting for it.
 */
const connectControl = (node: string, url: string, queryTimeoutMs: number) =>
  connectBounded(node, url, 'lockstep-control', queryTimeoutMs, {
    lock_timeout: `${controlLockWaitMs(queryTimeoutMs)}ms`,
    idle_in_transaction_session_timeout: '10s',
  });

/** Whether the node has no control schema, one missing migrations, or a current one (no Kysely). */
async function controlSchemaState(
  node: string,
  url: string,
  queryTimeoutMs: number,
): Promise<'absent' | 'behind' | 'current'> {
  const client = await connectControl(node, url, queryTimeoutMs);
  try {
    const exists = await client.query(
      `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = 'kysely_migration'`,
      [CONTROL_SCHEMA],
    );
    if (exists.rowCount === 0) return 'absent';
    const { rows } = await client.query<{ name: string }>(
      'SELECT name FROM lockstep.kysely_migration',
    );
    const applied = new Set(rows.map((r) => r.name));
    return CONTROL_MIGRATION_NAMES.every((name) => applied.has(name)) ? 'current' : 'behind';
  } finally {
    await endClient(client);
  }
}

/**
 * Brings a node's existing control schema up to date, and creates none: an
 * agent's replica, attached by an older lockstep, that only attach would
 * otherwise upgrade (a bus migrate upgrades the primary alone).
 */
export async function upgradeControlSchema(
  node: string,
  url: string,
  queryTimeoutMs: number,
): Promise<void> {
  if ((await controlSchemaState(node, url, queryTimeoutMs)) === 'behind')
    await migrateControlSchema(node, url, queryTimeoutMs);
}

/** {@link migrateControlSchema} on every node, at once. */
export async function migrateControlSchemas(
  nodes: ReadonlyArray<{ name: string; url: string }>,
  queryTimeoutMs: number,
): Promise<void> {
  await Promise.all(nodes.map((n) => migrateControlSchema(n.name, n.url, queryTimeoutMs)));
}

/**
 * Creates or upgrades the control schema on a node (kysely migrations, with
 * their bookkeeping inside the `lockstep` schema too), all in one
 * transaction: the schema, the migration history tables and every migration
 * commit together or not at all, so a creation cut short (a killed attach, a
 * failing statement) leaves nothing that could pass for a dumped schema. A
 * node already current costs one query: a restarting sidecar does not load
 * the migrator. A lock wait that ends is named (node, step, who to look for).
 */
export async function migrateControlSchema(
  node: string,
  url: string,
  queryTimeoutMs: number,
): Promise<void> {
  try {
    if ((await controlSchemaState(node, url, queryTimeoutMs)) === 'current') return;
    await migrateOn(node, url, queryTimeoutMs);
  } catch (error) {
    throw namedLockWait(
      node,
      'creating or upgrading the control schema',
      error,
      controlSchemaLockFix(node),
    );
  }
}

/**
 * Kysely's Postgres adapter takes a session advisory lock of its own (one id
 * for every application that uses Kysely migrations in the database) and sets
 * lock_timeout to an hour for the transaction. The creators' own lock
 * serialises lockstep's creators, and the upgrade keeps its short lock wait.
 */
class NoMigrationLockAdapter extends PostgresAdapter {
  override async acquireMigrationLock(): Promise<void> {}
  override async releaseMigrationLock(): Promise<void> {}
}

class ControlSchemaDialect extends PostgresDialect {
  override createAdapter() {
    return new NoMigrationLockAdapter();
  }
}

async function migrateOn(node: string, url: string, queryTimeoutMs: number): Promise<void> {
  const [{ Migrator }, { controlMigrations }] = await Promise.all([
    import('kysely'),
    import('../../../migrations/index.js'),
  ]);
  const client = await connectControl(node, url, queryTimeoutMs);
  // Kysely runs on this one session, inside the transaction opened on it below.
  const session = Object.assign(client, { release: () => undefined });
  const db = new Kysely<unknown>({
    dialect: new ControlSchemaDialect({
      pool: { connect: async () => session, end: async () => undefined },
    }),
  });
  let answered = true;
  try {
    await client.query('BEGIN');
    // One creator at a time: a second one waits, then finds the schema current.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('lockstep.control-schema'))`);
    // A queued ACCESS EXCLUSIVE stalls every session behind it (a running sidecar's decisions
    // and status): give up soon on a busy table; the callers try again.
    const wait = Math.min(UPGRADE_LOCK_WAIT_MS, controlLockWaitMs(queryTimeoutMs));
    await client.query(`SET LOCAL lock_timeout = '${wait}ms'`);
    await client.query('CREATE SCHEMA IF NOT EXISTS lockstep');
    const migrator = new Migrator({
      db,
      provider: controlMigrations,
      migrationTableSchema: CONTROL_SCHEMA,
      disableTransactions: true,
    });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
    await client.query('COMMIT');
  } catch (error) {
    // A statement past its deadline may still run: a ROLLBACK would queue behind it.
    answered = !DEADLINE_PASSED.test((error as Error).message ?? '');
    if (answered) await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await db.destroy();
    if (answered) await endClient(client);
    else dropClient(client);
  }
}

/** pg's error for a query past the session's deadline (it has no code). */
const DEADLINE_PASSED = /query read timeout/i;

/** Where to look when creating or upgrading the control schema waited on a lock in vain. */
const controlSchemaLockFix = (node: string) =>
  `find the session on ${node === 'primary' ? 'the primary' : `replica ${node}`} that holds it: pg_locks joined with pg_stat_activity (a transaction that used a lockstep.* table, another lockstep process creating the schema), or pg_prepared_xacts for a transaction left prepared (lockstep recover finishes those); let it finish or end it, then run this again`;
