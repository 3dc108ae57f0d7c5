/**
 * The one-phase rule (DESIGN.md, "One-phase"): what a replica at version `r`
 * does with packet `v`.
 *
 * | replica `r`  | action                                           |
 * |--------------|--------------------------------------------------|
 * | `r == v - 1` | apply, store `(v, lsn)` in the same transaction  |
 * | `r >= v`     | duplicate: skip                                  |
 * | `r < v - 1`  | gap: request the delta `r+1 .. v-1`, then apply  |
 */
export type OnePhaseDecision =
  | { readonly action: 'apply' }
  | { readonly action: 'skip-duplicate' }
  | { readonly action: 'request-delta'; readonly from: number; readonly to: number };

/** Decides what a replica at `replicaVersion` does with the packet `packetVersion`. */
export function decideOnePhase(replicaVersion: number, packetVersion: number): OnePhaseDecision {
  if (!Number.isSafeInteger(replicaVersion) || replicaVersion < 0) {
    throw new RangeError(`replica version must be a non-negative integer, got ${replicaVersion}`);
  }
  if (!Number.isSafeInteger(packetVersion) || packetVersion < 1) {
    throw new RangeError(`packet version must be a positive integer, got ${packetVersion}`);
  }
  if (replicaVersion === packetVersion - 1) return { action: 'apply' };
  if (replicaVersion >= packetVersion) return { action: 'skip-duplicate' };
  return { action: 'request-delta', from: replicaVersion + 1, to: packetVersion - 1 };
}
