import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { DeposedError, LockstepError } from '../ports/lockstep-error.js';
import type { ReplicaLockPort } from '../ports/packet-reader.js';
import type { ResyncGuardPort, StreamPosition } from '../ports/resync-guard.js';
import { lsnToBigInt } from '../protocol/index.js';
import { onPrimaryStep, onReplica } from './attach-cluster.js';
import { takeAgentLocks } from './bus-resync.js';
import { lockNotTaken, nodeStepError } from './node-step.js';

/** A real point of the stream a resynced replica restarts from. */
export type ResyncAnchor = StreamPosition;

/**
 * Where a resynced replica restarts: the lowest position among the other
 * replicas (the slot is confirmed no further, so its WAL is still there).
 * Packets from there up to the fresh copy's LSN touch only tables whose copy
 * already holds them, so they are skipped; numbering stays the stream's own.
 */
export async function findResyncAnchor(
  cluster: LockstepCluster,
  config: LockstepConfig,
  replica: string,
  stale: ReadonlySet<string>,
): Promise<ResyncAnchor> {
  const confirmed = await onResyncPrimary(
    cluster,
    config,
    "reading the slot's confirmed position (nothing emptied yet)",
    async (primary) => (await primary.slots.read(config.slot))?.confirmedFlushLsn ?? null,
  );
  let anchor: ResyncAnchor | null = null;
  const unasked: LockstepError[] = [];
  for (const other of config.replicas) {
    if (other.name === replica || stale.has(other.name)) continue;
    try {
      const row = await readPosition(cluster, config, other);
      if (row && (!anchor || row.version < anchor.version))
        anchor = { version: row.version, lsn: row.lsn };
    } catch (error) {
      // Unreachable or not answering: not a starting point (the slot keeps WAL for it anyway).
      // Any other failure stops the resync: what the replica holds is unknown.
      if ((error as LockstepError).setting !== 'connection') throw error;
      unasked.push(error as LockstepError);
    }
  }
  if (!anchor || !confirmed || lsnToBigInt(anchor.lsn) + 1n < lsnToBigInt(confirmed)) {
    const failed = unasked.map((e) => `; ${e.node}: ${e.problem}`).join('');
    throw new LockstepError({
      node: replica,
      problem: `cannot resync: no healthy replica holds a position the slot still has WAL for${failed}`,
      fix: unasked.length
        ? `run the resync again once ${unasked.map((e) => e.node).join(', ')} answers, or detach and attach again from scratch`
        : 'detach and attach again from scratch (every replica is copied anew and the stream restarts at version 0)',
    });
  }
  return anchor;
}

/**
 * A replica's position in the stream, on a bounded session: a replica that
 * stopped answering fails the read after applyTimeoutMs, naming it, instead
 * of hanging the resync.
 */
async function readPosition(
  cluster: LockstepCluster,
  config: LockstepConfig,
  replica: ReplicaConfig,
): Promise<StreamPosition | null> {
  const step = 'reading its position (the starting point of a resync)';
  const fix = 'run the resync again';
  const deadlineMs = config.applyTimeoutMs;
  try {
    return await onReplica(cluster, replica, (session) => session.positions.read(config.slot), {
      applicationName: 'lockstep-resync',
      queryTimeoutMs: deadlineMs,
    });
  } catch (error) {
    throw nodeStepError(replica.name, step, deadlineMs, error, fix);
  }
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
 * emptied and copied. With `bus` agents apply, not lockstep run: each
 * replica's agent lock is held instead, and a named resync (not a start-over,
 * which drops the slot) goes on while the publisher publishes.
 */
export async function withResyncGuards<T>(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
  run: { manual: boolean; startOver: boolean },
  body: (guards: readonly ResyncGuardPort[]) => Promise<T>,
): Promise<T> {
  const guards: ResyncGuardPort[] = [];
  const agents = new Map<string, ReplicaLockPort>();
  const publisherMayRun = config.bus !== undefined && !run.startOver;
  const coordinator =
    run.manual && names.length && !publisherMayRun
      ? cluster.streamLock(config.primary, config.slot)
      : null;
  try {
    const taken = coordinator?.tryAcquire().catch((error: unknown) => {
      throw lockNotTaken(
        config.slot,
        error,
        'attach --resync; nothing copied yet',
        'run lockstep attach --resync again',
      );
    });
    if (coordinator && !(await taken)) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep run for stream "${config.slot}" holds the coordinator lock`,
        fix: 'stop lockstep run before a manual resync, or set resync: "auto" and let the sidecar do it',
      });
    }
    if (config.bus) await takeAgentLocks(cluster, config, names, agents);
    for (const name of names) {
      const target = replicaNamed(config, name);
      const guard = await cluster.takeResyncGuard(name, target.url, config.slot);
      guards.push(guard);
      // Agent lock lost (its session ended): an agent may apply now. Ending the
      // guard's session fails the resync closed (its checks and copies see it).
      agents.get(name)?.onLost(() => void guard.release());
    }
    return await body(guards);
  } finally {
    for (const guard of guards) await guard.release();
    for (const agent of agents.values()) await agent.release();
    await coordinator?.release();
  }
}

/** Marks a replica stale durably before a manual resync empties it: a failed resync leaves it stale. */
export async function markStaleBeforeResync(
  cluster: LockstepCluster,
  config: LockstepConfig,
  replica: string,
): Promise<void> {
  await onResyncPrimary(
    cluster,
    config,
    `marking ${replica} stale before its resync (nothing emptied yet)`,
    (primary) => primary.replicaStatus.markStale(config.slot, replica),
  );
}

/**
 * A resync's step on the primary, bounded as its replica steps (applyTimeoutMs;
 * a lock wait ends on the server a margin before it): a primary that stops
 * answering fails the step, naming it, instead of hanging the resync.
 */
export function onResyncPrimary<T>(
  cluster: LockstepCluster,
  config: LockstepConfig,
  step: string,
  work: (primary: PrimarySession) => Promise<T>,
): Promise<T> {
  const named = { name: step, fix: 'run the resync again', applicationName: 'lockstep-resync' };
  return onPrimaryStep(cluster, config, named, work);
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
  primary: PrimarySession,
  stream: string,
  names: readonly string[],
  guards: readonly ResyncGuardPort[],
  holder: ResyncHolder | undefined,
  /** The holder's epoch when the resync began. */
  epoch: number | null | undefined,
): Promise<void> {
  for (const guard of guards) guard.check();
  // Removed or replaced while it was copied: its mark is not this resync's to end.
  await requireHolder(holder);
  if (holder && (epoch === null || epoch === undefined)) throw new DeposedError(null);
  const current = await primary.replicaStatus.clearStaleFenced(stream, names, epoch ?? null);
  if (holder && !current) throw new DeposedError(epoch ?? null);
}

/**
 * Records a reset replica's new position on the primary too: the sidecar's
 * last-known positions must not keep the old one (its lag would be measured
 * from there and mark the fresh copy stale again).
 */
export async function recordResetPositions(
  primary: PrimarySession,
  stream: string,
  replicas: readonly string[],
  position: ResyncAnchor,
): Promise<void> {
  await primary.replicaStatus.recordPositions(stream, replicas, position);
}
