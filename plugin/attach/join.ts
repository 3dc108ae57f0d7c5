import type { LockstepConfig } from '../config/config-schema.js';
import type { JoinHoldSession } from '../ports/join-holds.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { ResyncGuardPort } from '../ports/resync-guard.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';
import { onPrimaryStep, onReplica } from './attach-cluster.js';
import type { StepReporter } from './attach-progress.js';
import { awaitCoordinator } from './await-sidecar.js';
import { findResyncAnchor, type ResyncAnchor } from './resync.js';
import { verifyJoined } from './verify-joined.js';

/** Replicas joining an attached stream: copied from a fresh snapshot, placed at `anchor`. */
export interface Join {
  readonly replicas: readonly string[];
  /** A real position of the stream (the lowest of the other replicas): where they start. */
  readonly anchor: ResyncAnchor;
  /** Each joining replica's resync lock: one attach at a time copies it. */
  readonly guards: readonly ResyncGuardPort[];
  /** Places every joining replica at the anchor (once its tables are copied). */
  place(): Promise<void>;
  /** Checks that the slot still holds the WAL from every joined replica's position. */
  verify(): Promise<void>;
  release(): Promise<void>;
}

/** A manual resync or join while something streams from the slot could race it past the starting point. */
export async function refuseWhileStreaming(
  cluster: LockstepCluster,
  config: LockstepConfig,
  fix: string,
): Promise<void> {
  const active = await onPrimaryStep(
    cluster,
    config,
    { name: `reading whether slot "${config.slot}" is in use`, fix },
    async (primary) => (await primary.slots.read(config.slot))?.active,
  );
  if (active)
    throw new LockstepError({
      node: 'primary',
      setting: 'replication slot',
      problem: `the slot "${config.slot}" is in use: a lockstep run is streaming`,
      fix,
    });
}

/** Drops the join holds of configured replicas that have a position (their attach placed them). */
export async function dropPlacedHolds(
  cluster: LockstepCluster,
  config: LockstepConfig,
  unplaced: ReadonlySet<string>,
): Promise<void> {
  const placed = config.replicas.map((r) => r.name).filter((name) => !unplaced.has(name));
  if (placed.length === 0) return;
  await onPrimaryStep(
    cluster,
    config,
    {
      name: `dropping the join holds of placed replicas (${placed.join(', ')})`,
      fix: 'run lockstep attach again (it resumes)',
      commits: true,
    },
    (primary) => primary.joinHolds.drop(config.slot, placed),
  );
}

/** Names of the configured replicas with no position in the stream. */
export async function unplacedReplicas(
  cluster: LockstepCluster,
  config: LockstepConfig,
): Promise<Set<string>> {
  const unplaced = new Set<string>();
  for (const replica of config.replicas) {
    const position = await onReplica(cluster, replica, (session) =>
      session.positions.read(config.slot),
    );
    if (!position) unplaced.add(replica.name);
  }
  return unplaced;
}

/**
 * Starts the join of `names` to an attached stream. The slot must not be
 * confirmed past the starting point between choosing it and placing the
 * replicas there, so before anything is chosen either this process holds the
 * coordinator lock (no sidecar runs), or the running sidecar has the replicas
 * among its own, connected to the same databases — it holds the slot for a
 * replica without a position. Then each replica's resync lock is taken, what
 * an interrupted join copied is emptied, and the anchor is read: the lowest
 * position of the other healthy replicas (the slot is confirmed no further).
 * A durable hold at the anchor is written on the primary (every sidecar
 * confirms the slot no further than a hold), and the coordinator lock is let
 * go: a sidecar started during the copy becomes active and serves the other
 * replicas. The caller copies from a snapshot taken after this, then calls
 * place(); release() drops the holds.
 */
export async function startJoin(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
  step: StepReporter,
  /** The caller holds the coordinator lock already (a manual resync in the same attach). */
  lockHeld = false,
): Promise<Join> {
  const lock = cluster.streamLock(config.primary, config.slot);
  const guards: ResyncGuardPort[] = [];
  let holds: JoinHoldSession | null = null;
  const release = async () => {
    // A hold that cannot be dropped now stays visible (status, doctor): the next attach drops it.
    await holds
      ?.release(names)
      .catch((error: Error) => step('cannot drop the join hold now', { err: error.message }));
    for (const guard of guards) await guard.release();
    await lock.release();
  };
  try {
    if (lockHeld || (await awaitCoordinator(cluster, config, names, lock, step)))
      await refuseWhileStreaming(
        cluster,
        config,
        'stop the process streaming from the slot, or let it finish, then run lockstep attach again',
      );
    for (const name of names) {
      const replica = config.replicas.find((r) => r.name === name);
      if (replica) guards.push(await cluster.takeResyncGuard(name, replica.url, config.slot));
    }
    for (const guard of guards) await guard.clearCopies(config.slot);
    const anchor = await joinAnchor(cluster, config, names, lockHeld || lock.held);
    holds = await cluster.openJoinHolds(config.primary, config.slot);
    await holds.hold(names, anchor);
    // Held durably from here on: a sidecar started during the copy need not stand by.
    await lock.release();
    // The anchor is the lowest position of the other replicas; the slot is held there until then.
    step('joining: a fresh copy, then the stream from the anchor', {
      replicas: names,
      version: anchor.version,
    });
    return {
      replicas: names,
      anchor,
      guards,
      place: async () => {
        for (const guard of guards) await guard.place(config.slot, anchor);
      },
      verify: () => verifyJoined(cluster, config, guards),
      release,
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/** The lowest position of the other healthy replicas; their stale marks are read while `locked` or not. */
async function joinAnchor(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
  locked: boolean,
): Promise<ResyncAnchor> {
  const step = {
    name: `reading which replicas are stale before ${names.join(', ')} join (nothing copied yet)`,
    fix: 'run lockstep attach again',
    commits: locked,
  };
  const excluded = await onPrimaryStep(cluster, config, step, async (primary) => {
    const stale = await primary.replicaStatus.staleReplicas(config.slot);
    // Holding the lock, no sidecar holds WAL for the joining replicas now: their marks end with the copy.
    if (locked) await primary.replicaStatus.clearStale(config.slot, names);
    return new Set([...names, ...stale]);
  });
  try {
    return await findResyncAnchor(cluster, config, names[0] as string, excluded);
  } catch (error) {
    if (!(error instanceof LockstepError)) throw error;
    throw new LockstepError({
      node: names[0] as string,
      problem:
        'cannot join the stream: no other replica is reachable with a position the slot still has WAL for',
      fix: 'bring the other replicas back (lockstep status), then run lockstep attach again',
      cause: error,
    });
  }
}

/** No replica has a position, but the slot moved on: version 0 is gone, so none can start there. */
export async function refuseIfConsumed(
  cluster: LockstepCluster,
  config: LockstepConfig,
  startLsn: Lsn,
): Promise<void> {
  const confirmed = await onPrimaryStep(
    cluster,
    config,
    { name: `reading slot "${config.slot}"`, fix: 'run lockstep attach again' },
    async (primary) => (await primary.slots.read(config.slot))?.confirmedFlushLsn,
  );
  if (confirmed && lsnToBigInt(confirmed) > lsnToBigInt(startLsn) + 1n)
    throw new LockstepError({
      node: 'primary',
      problem: `no replica has a position in stream "${config.slot}", and its slot moved past the stream's start: no replica can start from a position the slot still has`,
      fix: config.bus
        ? `lockstep attach --resync NAME for each replica, its agent stopped (with bus a replica restarts at the stream's recorded head; --resync all is refused)`
        : 'lockstep attach --resync all (a new slot; every replica copied from its snapshot)',
    });
}
