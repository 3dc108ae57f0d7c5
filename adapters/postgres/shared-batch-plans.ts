import type { Change } from '../../plugin/protocol/index.js';
import type { EncodedInserts, EncodedNetChanges } from './bulk-statement.js';

/** A batch's plan: its encoded net changes, or null when it must be applied change by change. */
export type BatchPlan = readonly EncodedNetChanges[] | null;

interface Entry {
  /** The batch's packets' change lists, by identity: the window hands every replica the same ones. */
  readonly packets: readonly (readonly Change[])[];
  readonly plan: BatchPlan;
}

/** Encoded runs of inserts kept per replica (replicas in step are a few parts apart at most). */
const RUNS_PER_REPLICA = 8;

/**
 * Batch plans shared by the replica targets of one sidecar. Replicas that keep
 * up apply the same packets in the same batches; compacting a batch and
 * encoding its values is most of the sidecar's work per row, so it is done
 * once for all of them. The same holds for the runs of inserts of a large
 * packet's parts, applied in order. Work is reused only for the very same
 * packet parts (identity, not equal content), so it never serves anything
 * else; the few most recent results are kept. Every target sharing it uses
 * the same `conflicts` mode (it decides how inserts are encoded).
 */
export class SharedBatchPlans {
  private readonly recent: Entry[] = [];
  private readonly runs: { changes: readonly Change[]; start: number; rows: EncodedInserts }[] = [];

  /** @param keep how many recent plans are kept (one per replica is enough for replicas in step). */
  constructor(private readonly keep: number) {}

  /** The plan of the batch made of `packets`, built with `build` unless already known. */
  planOf(packets: readonly (readonly Change[])[], build: () => BatchPlan): BatchPlan {
    const known = this.recent.find((entry) => samePackets(entry.packets, packets));
    if (known) return known.plan;
    const plan = build();
    this.recent.push({ packets, plan });
    if (this.recent.length > this.keep) this.recent.shift();
    return plan;
  }

  /** The encoded run of inserts starting at `changes[start]`, built with `build` unless already known. */
  runOf(changes: readonly Change[], start: number, build: () => EncodedInserts): EncodedInserts {
    if (this.keep === 0) return build();
    const known = this.runs.find((run) => run.changes === changes && run.start === start);
    if (known) return known.rows;
    const rows = build();
    this.runs.push({ changes, start, rows });
    if (this.runs.length > this.keep * RUNS_PER_REPLICA) this.runs.shift();
    return rows;
  }
}

function samePackets(
  a: readonly (readonly Change[])[],
  b: readonly (readonly Change[])[],
): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
