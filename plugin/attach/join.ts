import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { dropJoinHolds, JoinHolds } from '../../adapters/postgres/control/join-holds.js';
import { ResyncGuard } from '../../adapters/postgres/control/resync-guard.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { readSlot } from '../../adapters/postgres/source/replication-slot.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';
import { awaitCoordinator } from './await-sidecar.js';
import { findResyncAnchor, type ResyncAnchor } from './resync.js';

/** Replicas joining an attached stream: copied from a fresh snapshot, placed at `anchor`. */
export interface Join {
  readonly replicas: readonly string[];
  /** A real position of the stream (the lowest of the other replicas): where they start. */
  readonly anchor: ResyncAnchor;
  /** Each joining replica's resync lock: one attach at a time copies it. */
  readonly guards: readonly ResyncGuard[];
  /** Places every joining replica at the anchor (once its tables are copied). */
  place(): Promise<void>;
  /** Checks that the slot still holds the WAL from every joined replica's position. */
  verify(): Promise<void>;
  release(): Promise<void>;
}

/** A manual resync or join while something streams from the slot could race it past the starting point. */
export async function refuseWhileStreaming(config: LockstepConfig, fix: string): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  try {
    if ((await readSlot(primary, config.slot))?.active) {
      throw new LockstepError({
        node: 'primary',
        setting: 'replication slot',
        problem: `the slot "${config.slot}" is in use: a lockstep run is streaming`,
        fix,
      });
    }
  } finally {
    await primary.end();
  }
}

/** Drops the join holds of configured replicas that have a position (their attach placed them). */
export async function dropPlacedHolds(
  config: LockstepConfig,
  unplaced: ReadonlySet<string>,
): Promise<void> {
  const placed = config.replicas.map((r) => r.name).filter((name) => !unplaced.has(name));
  if (placed.length === 0) return;
  const primary = await connectNode('primary', config.primary);
  try {
    await dropJoinHolds(primary, config.slot, placed);
  } finally {
    await primary.end();
  }
}

/** Names of the configured replicas with no position in the stream. */
export async function unplacedReplicas(config: LockstepConfig): Promise<Set<string>> {
  const unplaced = new Set<string>();
  for (const replica of config.replicas) {
    const client = await connectNode(replica.name, replica.url);
    try {
      const { rowCount } = await client.query('SELECT 1 FROM lockstep.applied WHERE stream = $1', [
        config.slot,
      ]);
      if (!rowCount) unplaced.add(replica.name);
    } finally {
      await client.end();
    }
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
  config: LockstepConfig,
  names: readonly string[],
  step: (message: string) => void,
  /** The caller holds the coordinator lock already (a manual resync in the same attach). */
  lockHeld = false,
): Promise<Join> {
  const lock = new StreamLock(config.primary, config.slot);
  const guards: ResyncGuard[] = [];
  let holds: JoinHolds | null = null;
  const release = async () => {
    // A hold that cannot be dropped now stays visible (status, doctor): the next attach drops it.
    await holds
      ?.release(names)
      .catch((error: Error) => step(`cannot drop the join hold now: ${error.message}`));
    for (const guard of guards) await guard.release();
    await lock.release();
  };
  try {
    if (lockHeld || (await awaitCoordinator(config, names, lock, step)))
      await refuseWhileStreaming(
        config,
        'stop the process streaming from the slot, or let it finish, then run lockstep attach again',
      );
    for (const name of names) {
      const replica = config.replicas.find((r) => r.name === name);
      if (replica) guards.push(await ResyncGuard.take(name, replica.url, config.slot));
    }
    for (const guard of guards) await guard.clearCopies(config.slot);
    const anchor = await joinAnchor(config, names, lockHeld || lock.held);
    holds = await JoinHolds.open(config.primary, config.slot);
    await holds.hold(names, anchor);
    // Held durably from here on: a sidecar started during the copy need not stand by.
    await lock.release();
    step(
      `joining ${names.join(', ')}: copied from a fresh snapshot, starting from version ${anchor.version} (the lowest position of the other replicas); the slot is held there until then`,
    );
    return {
      replicas: names,
      anchor,
      guards,
      place: async () => {
        for (const guard of guards) await guard.place(config.slot, anchor);
      },
      verify: () => verifyJoined(config, guards),
      release,
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/** The lowest position of the other healthy replicas; their stale marks are read while `locked` or not. */
async function joinAnchor(
  config: LockstepConfig,
  names: readonly string[],
  locked: boolean,
): Promise<ResyncAnchor> {
  const primary = await connectNode('primary', config.primary);
  let excluded: Set<string>;
  try {
    const { rows } = await primary.query<{ replica: string }>(
      'SELECT replica FROM lockstep.replica_status WHERE stream = $1 AND stale_since IS NOT NULL',
      [config.slot],
    );
    excluded = new Set([...names, ...rows.map((r) => r.replica)]);
    // Holding the lock, no sidecar holds WAL for the joining replicas now: their marks end with the copy.
    if (locked)
      await primary.query(
        'UPDATE lockstep.replica_status SET stale_since = NULL WHERE stream = $1 AND replica = ANY($2::text[])',
        [config.slot, names],
      );
  } finally {
    await primary.end();
  }
  try {
    return await findResyncAnchor(config, names[0] as string, excluded);
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

/**
 * Fails closed should the slot have been confirmed past a joined replica's
 * position (a sidecar that did not know it ran meanwhile): its position is
 * taken back, so it is not attached, and attach can be run again. The slot
 * is read before the position: a position only grows, so what is found is real.
 */
async function verifyJoined(config: LockstepConfig, guards: readonly ResyncGuard[]): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  let confirmed: Lsn | null;
  let stale: Set<string>;
  try {
    confirmed = (await readSlot(primary, config.slot))?.confirmedFlushLsn ?? null;
    // Marked stale during the copy (it held WAL past maxLagBytes): the sidecar let its WAL go.
    const { rows } = await primary.query<{ replica: string }>(
      `SELECT replica FROM lockstep.replica_status
        WHERE stream = $1 AND replica = ANY($2::text[]) AND stale_since IS NOT NULL`,
      [config.slot, guards.map((g) => g.replica)],
    );
    stale = new Set(rows.map((r) => r.replica));
  } finally {
    await primary.end();
  }
  for (const guard of guards)
    if (stale.has(guard.replica)) {
      await guard.unplace(config.slot);
      throw new LockstepError({
        node: guard.replica,
        problem:
          'the sidecar marked it stale during the copy: the WAL held for it passed maxLagBytes, so its starting point may be gone',
        fix: 'run lockstep attach again (a larger maxLagBytes, or a quieter moment, gives the copy more room)',
      });
    }
  if (!confirmed) return;
  for (const guard of guards) {
    const replica = config.replicas.find((r) => r.name === guard.replica);
    if (!replica) continue;
    const client = await connectNode(replica.name, replica.url);
    let lsn: string | undefined;
    try {
      const { rows } = await client.query<{ lsn: string }>(
        'SELECT lsn::text AS lsn FROM lockstep.applied WHERE stream = $1',
        [config.slot],
      );
      lsn = rows[0]?.lsn;
    } finally {
      await client.end();
    }
    if (lsn && lsnToBigInt(lsn) + 1n < lsnToBigInt(confirmed)) {
      await guard.unplace(config.slot);
      throw new LockstepError({
        node: replica.name,
        problem: `while it was copied the slot was confirmed past its starting point (${lsn} < ${confirmed}): a lockstep run that does not have it in its configuration confirmed it`,
        fix: 'give every lockstep run of this stream the configuration naming it (SIGHUP or restart), then run lockstep attach again',
      });
    }
  }
}
