import { isUnanswered } from '../attach/node-step.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { LockstepCluster, PreparedGidEntry } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { AppliedPosition } from '../ports/positions-store.js';
import type { ReplicaNote } from '../ports/replica-status-store.js';
import type { MigrationReading } from '../protocol/migration-summary.js';

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

/** No control schema, or no position table in it: the node was never attached (not a failed read). */
const NO_CONTROL_TABLE = new Set(['42P01', '3F000']);

/** Whether a control table read failed only because the node was never attached. */
export const neverAttached = (error: unknown) =>
  NO_CONTROL_TABLE.has((error as { code?: string } | undefined)?.code ?? '');

/**
 * status's `error` for a node that answered its reads with an error (a lock
 * wait that timed out, missing privileges): its own message, never "not attached".
 */
export const failedReadError = (node: string, error: unknown) =>
  error instanceof LockstepError
    ? error.message
    : new LockstepError({
        node,
        sqlState: (error as { code?: string } | undefined)?.code,
        problem: `status's reads failed: ${(error as Error | undefined)?.message ?? String(error)}`,
        fix: 'see the error; a lock timeout: another session holds a lockstep control table, run lockstep status again once it commits',
        cause: error,
      }).message;

/** What status read on one replica, or why it could not. */
export type ReplicaReading =
  | {
      readonly row: AppliedPosition | null;
      readonly prepared: readonly PreparedGidEntry[];
      /**
       * Its migration history and when its copy began, read after the
       * prepared gids (a gid committed in between is in it).
       */
      readonly migrations: MigrationReading;
    }
  | { readonly unreachable: { readonly state: string; readonly error: string } }
  | { readonly failed: string };

/** States the sidecar noted that say more than "unreachable now": kept as they are. */
const KEPT_STATES = ['stale', 'resyncing', 'unresponsive'];

/**
 * A replica's position and prepared gids, on a bounded session. One that
 * cannot be reached is `halted` now, one that stops answering `unresponsive`
 * (the sidecar's word for it), unless the sidecar noted stale, resyncing or
 * unresponsive. A missing control schema reads as no position (not attached);
 * any other failed read is `failed`, with its own error.
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
      if (neverAttached(error)) return null;
      throw error;
    });
    const prepared = await session.preparedGids();
    return { row, prepared, migrations: await session.migrationReading(config.slot) };
  } catch (error) {
    // Answered with an error: reachable, its state as noted, the error as it is.
    if (!isUnanswered(error)) return { failed: failedReadError(replica.name, error) };
    const message = unansweredError(replica.name, config.applyTimeoutMs);
    return { unreachable: { state: kept ?? 'unresponsive', error: message } };
  } finally {
    await session.close();
  }
}
