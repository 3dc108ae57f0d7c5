import { SharedBatchPlans } from './shared-batch-plans.js';

/** How a replica target applies, beyond where to (all optional). */
export interface ReplicaTargetOptions {
  /** lock_timeout and statement_timeout of transactions that will be prepared (ms); 5 s. */
  readonly participantTimeoutMs?: number;
  /**
   * The apply deadline (ms), 30 s: also how long the replica lets one of this
   * target's transactions sit idle, so a frozen applier's locks (its position
   * row, its rows) end with it instead of fencing its successor out for ever.
   */
  readonly applyTimeoutMs?: number;
  /** Batch plans shared with the sidecar's other replicas (a private one when alone). */
  readonly plans?: SharedBatchPlans;
  /** Tells what the apply decided on its own (captured DDL already in the copy), for the log. */
  readonly note?: (message: string, fields: Record<string, unknown>) => void;
  /** `twoPhase.captureDdl` here: off, captured DDL in a packet halts the replica, never runs. */
  readonly runsCapturedDdl?: boolean;
}

/** The options with every default filled in. */
export function withDefaults(options: ReplicaTargetOptions): Required<ReplicaTargetOptions> {
  return {
    participantTimeoutMs: options.participantTimeoutMs ?? 5_000,
    applyTimeoutMs: options.applyTimeoutMs ?? 30_000,
    plans: options.plans ?? new SharedBatchPlans(0),
    note: options.note ?? (() => {}),
    runsCapturedDdl: options.runsCapturedDdl ?? true,
  };
}
