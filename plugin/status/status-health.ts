import type { LockstepStatus } from './read-status.js';

/** Replica states that mean it is not applying the stream and will not by itself soon. */
export const TROUBLED_STATES: readonly string[] = ['halted', 'stale', 'unresponsive'];

/** What is wrong in a status, for its exit code and the watch view. */
export interface StatusHealth {
  /** Nodes status could not connect to (`primary` or a replica's name). */
  readonly unreachable: readonly string[];
  /** Replicas in a troubled state. */
  readonly troubled: ReadonlyArray<{ name: string; state: string }>;
  /** The replication slot is lost (invalidated or gone): no replica gets anything any more. */
  readonly slotLost: boolean;
  /** Replicas whose migration history is not the primary's (a migration lacking there). */
  readonly diverged: readonly string[];
}

/**
 * The one place that judges a status: which nodes were unreachable, which
 * replicas are troubled, whether the slot is lost, which replicas' migration
 * histories are not the primary's.
 */
export function statusHealth(status: LockstepStatus): StatusHealth {
  return {
    unreachable: [
      ...(status.primary.reachable ? [] : ['primary']),
      ...(status.bus?.reachable === false ? ['bus'] : []),
      ...status.replicas.filter((r) => !r.reachable).map((r) => r.name),
    ],
    troubled: status.replicas
      .filter((r) => TROUBLED_STATES.includes(r.state))
      .map((r) => ({ name: r.name, state: r.state })),
    slotLost: status.slot?.lost === true,
    diverged: status.replicas.filter((r) => r.migrationsDiffer).map((r) => r.name),
  };
}
