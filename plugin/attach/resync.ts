import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/node-connection.js';
import { readSlot } from '../../adapters/postgres/replication-slot.js';
import { ResyncGuard } from '../../adapters/postgres/resync-guard.js';
import { quoteQualified } from '../../adapters/postgres/sql-identifier.js';
import type { CatalogTable } from '../../adapters/postgres/table-catalog.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { DeposedError, LockstepError } from '../lockstep-error.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';

/** A real point of the stream a resynced replica restarts from. */
export interface ResyncAnchor {
  readonly version: number;
  readonly lsn: Lsn;
}

/**
 * Where a resynced replica restarts: the lowest position among the other
 * replicas (the slot is confirmed no further, so its WAL is still there).
 * Packets from there up to the fresh copy's LSN touch only tables whose copy
 * already holds them, so they are skipped; numbering stays the stream's own.
 */
export async function findResyncAnchor(
  config: LockstepConfig,
  replica: string,
  stale: ReadonlySet<string>,
): Promise<ResyncAnchor> {
  const primary = await connectNode('primary', config.primary);
  let confirmed: Lsn | null;
  try {
    confirmed = (await readSlot(primary, config.slot))?.confirmedFlushLsn ?? null;
  } finally {
    await primary.end();
  }
  let anchor: ResyncAnchor | null = null;
  for (const other of config.replicas) {
    if (other.name === replica || stale.has(other.name)) continue;
    const client = await connectNode(other.name, other.url).catch(() => null);
    if (!client) continue;
    try {
      const { rows } = await client.query<{ version: string; lsn: Lsn }>(
        'SELECT version::text, lsn::text FROM lockstep.applied WHERE stream = $1',
        [config.slot],
      );
      const row = rows[0];
      if (row && (!anchor || Number(row.version) < anchor.version))
        anchor = { version: Number(row.version), lsn: row.lsn };
    } finally {
      await client.end();
    }
  }
  if (!anchor || !confirmed || lsnToBigInt(anchor.lsn) + 1n < lsnToBigInt(confirmed)) {
    throw new LockstepError({
      node: replica,
      problem: 'cannot resync: no healthy replica holds a position the slot still has WAL for',
      fix: 'detach and attach again from scratch (every replica is copied anew and the stream restarts at version 0)',
    });
  }
  return anchor;
}

function replicaNamed(config: LockstepConfig, name: string): ReplicaConfig {
  const target = config.replicas.find((r) => r.name === name);
  if (!target)
    throw new LockstepError({
      node: name,
      problem: 'no such replica in the configuration',
      fix: 'name one of "replicas"',
    });
  return target;
}

/**
 * Empties a replica's replicated tables and positions it at `anchor`, in one
 * transaction, so that attach copies every table again from a fresh snapshot.
 */
export async function resetForResync(
  config: LockstepConfig,
  replica: string,
  tables: readonly CatalogTable[],
  anchor: ResyncAnchor,
): Promise<void> {
  const target = replicaNamed(config, replica);
  const client: pg.Client = await connectNode(target.name, target.url);
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL session_replication_role = replica');
    if (tables.length)
      await client.query(
        `TRUNCATE ${tables.map((t) => quoteQualified(t.schema, t.name)).join(', ')}`,
      );
    await client.query('DELETE FROM lockstep.synced_tables WHERE stream = $1', [config.slot]);
    await client.query(
      `INSERT INTO lockstep.applied (stream, version, lsn) VALUES ($1, $2, $3)
       ON CONFLICT (stream) DO UPDATE SET version = excluded.version, lsn = excluded.lsn, applied_at = now()`,
      [config.slot, anchor.version, anchor.lsn],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}

/**
 * The sidecar that runs a resync (resync: auto): its coordinator lock is
 * checked once the replica's resync lock is held and before the replica is
 * emptied, and its epoch fences the end of the stale mark.
 */
export interface ResyncHolder {
  epoch(): number | null;
  verify(): Promise<boolean>;
}

/** Runs `body` holding the resync lock of every replica in `names` (none: just runs it). */
export async function withResyncGuards<T>(
  config: LockstepConfig,
  names: readonly string[],
  body: (guards: readonly ResyncGuard[]) => Promise<T>,
): Promise<T> {
  const guards: ResyncGuard[] = [];
  try {
    for (const name of names) {
      const target = replicaNamed(config, name);
      guards.push(await ResyncGuard.take(name, target.url, config.slot));
    }
    return await body(guards);
  } finally {
    for (const guard of guards) await guard.release();
  }
}

/** Throws {@link DeposedError} unless `holder` (when given) still holds the coordinator lock. */
export async function requireHolder(holder: ResyncHolder | undefined): Promise<void> {
  if (holder && !(await holder.verify())) throw new DeposedError(holder.epoch());
}

/**
 * Ends the durable stale marks of resynced replicas — only while every guard
 * is still held and, for a sidecar, only under its own epoch (a deposed
 * sidecar's late resync leaves the mark to its successor's).
 */
export async function clearStaleMarks(
  primary: pg.ClientBase,
  stream: string,
  names: readonly string[],
  guards: readonly ResyncGuard[],
  holder: ResyncHolder | undefined,
): Promise<void> {
  for (const guard of guards) guard.check();
  const epoch = holder ? holder.epoch() : undefined;
  if (epoch === null) throw new DeposedError(null);
  const { rows } = await primary.query<{ current: boolean }>(
    `WITH fence AS (
       SELECT epoch FROM lockstep.streams
        WHERE stream = $1 AND ($3::bigint IS NULL OR epoch = $3::bigint) FOR SHARE),
     cleared AS (
       UPDATE lockstep.replica_status SET stale_since = NULL
        WHERE stream = $1 AND replica = ANY($2::text[]) AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM fence) AS current`,
    [stream, names, epoch === undefined ? null : String(epoch)],
  );
  if (holder && rows[0]?.current !== true) throw new DeposedError(epoch ?? null);
}
