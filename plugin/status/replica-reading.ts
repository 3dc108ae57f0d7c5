import { isUnanswered } from '../attach/replica-step.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { LockstepCluster, PreparedGidEntry } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { AppliedPosition } from '../ports/positions-store.js';
import type { ReplicaNote } from '../ports/replica-status-store.js';

/**
 * How status opens a node's session: every query bounded by applyTimeoutMs,
 * the time after which the sidecar itself counts a replica `unresponsive`
 * (and doctor, detach and resync give up on one), so `status` answers
 * within about that even when a node's server is frozen.
 */
export const statusSession = (config: LockstepConfig) =>
  ({
    bounded: true,
    applicationName: 'lockstep-status',
    queryTimeoutMs: config.applyTimeoutMs,
  }) as const;

/** status's `error` for a node that did not answer its reads in time (names no connection string). */
export const unansweredError = (node: string, deadlineMs: number) =>
  new LockstepError({
    node,
    setting: 'connection',
    problem: `status's reads got no answer for ${deadlineMs} ms (applyTimeoutMs)`,
    fix: "check that the node's server runs and answers (not stopped, not overloaded), then run lockstep status again",
  }).message;

/** What status read on one replica, or why it could not. */
export type ReplicaReading =
  | { readonly row: AppliedPosition | null; readonly prepared: readonly PreparedGidEntry[] }
  | { readonly unreachable: { readonly state: string; readonly error: string } };

/** States the sidecar noted that say more than "unreachable now": kept as they are. */
const KEPT_STATES = ['stale', 'resyncing', 'unresponsive'];

/**
 * A replica's position and prepared gids, on a bounded session. One that
 * cannot be reached is `halted` now, one that stops answering `unresponsive`
 * (the sidecar's word for it), unless the sidecar noted stale, resyncing or
 * unresponsive. A missing control schema reads as no position (not attached).
 */
export async function readReplica(
  cluster: LockstepCluster,
  config: LockstepConfig,
  replica: ReplicaConfig,
  note: ReplicaNote | undefined,
): Promise<ReplicaReading> {
  const kept = note && KEPT_STATES.includes(note.state) ? note.state : null;
  let session: Awaited<ReturnType<LockstepCluster['replica']>>;
  try {
    session = await cluster.replica(replica.name, replica.url, statusSession(config));
  } catch (error) {
    return { unreachable: { state: kept ?? 'halted', error: (error as LockstepError).message } };
  }
  try {
    const row = await session.positions.read(config.slot).catch((error: unknown) => {
      if (isUnanswered(error)) throw error;
      return null;
    });
    return { row, prepared: await session.preparedGids() };
  } catch (error) {
    if (!isUnanswered(error)) throw error;
    const message = unansweredError(replica.name, config.applyTimeoutMs);
    return { unreachable: { state: kept ?? 'unresponsive', error: message } };
  } finally {
    await session.close();
  }
}
