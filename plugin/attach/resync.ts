import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { ResyncGuard } from '../../adapters/postgres/control/resync-guard.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { readSlot } from '../../adapters/postgres/source/replication-slot.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { DeposedError, LockstepError } from '../ports/lockstep-error.js';
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
 * The sidecar that runs a resync (resync: auto): its coordinator lock is
 * checked once the replica's resync lock is held and before the replica is
 * emptied, and its epoch fences the end of the stale mark.
 */
export interface ResyncHolder {
  epoch(): number | null;
  verify(): Promise<boolean>;
}

/**
 * Runs `body` holding the resync lock of every replica in `names` (none: just
 * runs it). A manual resync (not the sidecar's own) also holds the
 * coordinator lock throughout, so no sidecar applies to a replica being
 * emptied and copied.
 */
export async function withResyncGuards<T>(
  config: LockstepConfig,
  names: readonly string[],
  manual: boolean,
  body: (guards: readonly ResyncGuard[]) => Promise<T>,
): Promise<T> {
  const guards: ResyncGuard[] = [];
  const coordinator = manual && names.length ? new StreamLock(config.primary, config.slot) : null;
  try {
    if (coordinator && !(await coordinator.tryAcquire())) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep run for stream "${config.slot}" holds the coordinator lock`,
        fix: 'stop lockstep run before a manual resync, or set resync: "auto" and let the sidecar do it',
      });
    }
    for (const name of names) {
      const target = replicaNamed(config, name);
      guards.push(await ResyncGuard.take(name, target.url, config.slot));
    }
    return await body(guards);
  } finally {
    for (const guard of guards) await guard.release();
    await coordinator?.release();
  }
}

/** Marks a replica stale durably before a manual resync empties it: a failed resync leaves it stale. */
export async function markStaleBeforeResync(
  config: LockstepConfig,
  replica: string,
): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  try {
    await primary.query(
      `INSERT INTO lockstep.replica_status (stream, replica, state, stale_since) VALUES ($1, $2, 'stale', now())
       ON CONFLICT (stream, replica) DO UPDATE SET state = 'stale',
         stale_since = coalesce(lockstep.replica_status.stale_since, now()), updated_at = now()`,
      [config.slot, replica],
    );
  } finally {
    await primary.end();
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
  /** The holder's epoch when the resync began. */
  epoch: number | null | undefined,
): Promise<void> {
  for (const guard of guards) guard.check();
  if (holder && (epoch === null || epoch === undefined)) throw new DeposedError(null);
  const { rows } = await primary.query<{ current: boolean }>(
    `WITH fence AS (
       SELECT epoch FROM lockstep.streams
        WHERE stream = $1 AND ($3::bigint IS NULL OR epoch = $3::bigint) FOR SHARE),
     cleared AS (
       UPDATE lockstep.replica_status SET stale_since = NULL
        WHERE stream = $1 AND replica = ANY($2::text[]) AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM fence) AS current`,
    [stream, names, epoch === undefined || epoch === null ? null : String(epoch)],
  );
  if (holder && rows[0]?.current !== true) throw new DeposedError(epoch ?? null);
}

/**
 * Records a reset replica's new position on the primary too: the sidecar's
 * last-known positions must not keep the old one (its lag would be measured
 * from there and mark the fresh copy stale again).
 */
export async function recordResetPositions(
  primary: pg.ClientBase,
  stream: string,
  replicas: readonly string[],
  position: ResyncAnchor,
): Promise<void> {
  await primary.query(
    `UPDATE lockstep.replica_status SET version = $3, lsn = $4, updated_at = now()
      WHERE stream = $1 AND replica = ANY($2::text[])`,
    [stream, replicas, String(position.version), position.lsn],
  );
}
