import { LockstepError, type LockstepErrorReason } from './lockstep-error.js';

/** Why applying to a replica failed, for the halt message and the retry policy. */
export type ApplyFailureKind =
  | 'unreachable'
  /** Connected, but it stopped answering within the apply deadline: its connection was dropped. */
  | 'unresponsive'
  /** Another applier moved the replica's position first (a deposed sidecar, or its successor). */
  | 'fenced'
  | 'conflict'
  | 'schema'
  | 'not-synced'
  /** A migration's marker reached a replica that did not commit the migration's round. */
  | 'migration-missing'
  /** The stream's next version is a packet the replica already has (see `movesPast`). */
  | 'renumbered'
  | 'other';

/** A failed apply on one replica: names the node, table, version, the Postgres error and the fix. */
export class ApplyError extends LockstepError {
  readonly kind: ApplyFailureKind;
  readonly version: number;
  /** The migration round's gid, when the error is about one (`migration-missing`). */
  readonly migration: string | undefined;

  constructor(init: {
    node: string;
    kind: ApplyFailureKind;
    version: number;
    table?: string;
    migration?: string;
    problem: string;
    fix: string;
    sqlState?: string;
    reason?: LockstepErrorReason;
    cause?: unknown;
  }) {
    // Before a replica's position is known (connecting) there is no version to name.
    super({
      ...init,
      problem:
        init.version > 0
          ? `applying version ${init.version} failed: ${init.problem}`
          : init.problem,
    });
    this.name = 'ApplyError';
    this.kind = init.kind;
    this.version = init.version;
    this.migration = init.migration;
  }
}
