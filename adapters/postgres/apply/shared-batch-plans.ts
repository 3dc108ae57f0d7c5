import type { Change } from '../../../plugin/protocol/index.js';
import type { EncodedInserts, EncodedNetChanges } from './bulk-statement.js';

/** A batch's plan: its encoded net changes, or null when it must be applied change by change. */
export type BatchPlan = readonly EncodedNetChanges[] | null;

/** Encoded runs of inserts kept per replica (replicas in step are a few parts apart at most). */
const RUNS_PER_REPLICA = 8;

/**
 * The last `limit` results built, found again by key, each forgotten once
 * `sharers` callers have taken it: a kept key pins its packets' rows, and with
 * them every large value's message (a 100 MB row stayed resident until two
 * more batches had passed). Nothing is kept when `sharers` is 1 or less.
 */
class RecentResults<K, V> {
  private readonly entries: { key: K; value: V; taken: number }[] = [];

  constructor(
    private readonly limit: number,
    private readonly sharers: number,
    private readonly same: (a: K, b: K) => boolean,
  ) {}

  /** The result for `key`, built with `build` unless already known. */
  get(key: K, build: () => V): V {
    const at = this.entries.findIndex((entry) => this.same(entry.key, key));
    const known = this.entries[at];
    if (known) {
      if (++known.taken >= this.sharers) this.entries.splice(at, 1);
      return known.value;
    }
    const value = build();
    if (this.limit > 0 && this.sharers > 1) {
      this.entries.push({ key, value, taken: 1 });
      if (this.entries.length > this.limit) this.entries.shift();
    }
    return value;
  }
}

/**
 * Batch plans shared by the replica targets of one sidecar. Replicas that keep
 * up apply the same packets in the same batches; compacting a batch and
 * encoding its values is most of the sidecar's work per row, so it is done
 * once for all of them. The same holds for the runs of inserts of a large
 * packet's parts, applied in order. Work is reused only for the very same
 * packet parts (identity, not equal content), so it never serves anything
 * else; the few most recent results are kept, each until every replica took
 * it. Every target sharing it uses the same `conflicts` mode (it decides how
 * inserts are encoded).
 */
export class SharedBatchPlans {
  private readonly plans: RecentResults<readonly (readonly Change[])[], BatchPlan>;
  private readonly runs: RecentResults<
    { changes: readonly Change[]; start: number },
    EncodedInserts
  >;

  /**
   * @param keep how many replicas share it: as many recent plans are kept (one
   * per replica is enough for replicas in step), each until every replica took it.
   */
  constructor(keep: number) {
    this.plans = new RecentResults(keep, keep, samePackets);
    this.runs = new RecentResults(
      keep * RUNS_PER_REPLICA,
      keep,
      (a, b) => a.changes === b.changes && a.start === b.start,
    );
  }

  /** The plan of the batch made of `packets`, built with `build` unless already known. */
  planOf(packets: readonly (readonly Change[])[], build: () => BatchPlan): BatchPlan {
    return this.plans.get(packets, build);
  }

  /** The encoded run of inserts starting at `changes[start]`, built with `build` unless already known. */
  runOf(changes: readonly Change[], start: number, build: () => EncodedInserts): EncodedInserts {
    return this.runs.get({ changes, start }, build);
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
