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
import { compareLsn } from './lsn.js';
import type { ResumePoint } from './packet.js';

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

/**
 * Whether the packet that is next by version (`decideOnePhase` says apply)
 * really comes after what the replica holds: its commit LSN must be past the
 * LSN held with the replica's version. Versions are dense only as long as every
 * numbering of the WAL counts the same transactions; a re-derive that counts
 * differently (`captureDdl` or the publication changed before the bus lost its
 * tail) shifts them, and a packet the replica already has comes back one
 * version higher. Its LSN gives it away: refused, it is not applied twice.
 *
 * Why `<=` never refuses a genuine packet — the held LSN is always below the
 * commit LSN of the next packet the stream delivers, whatever wrote the row:
 * - a packet (a batch, a large packet's commit, a two-phase round, a round
 *   committed here by the coordinator): the row holds the last packet's own
 *   commit LSN (BEGIN's final LSN, see PacketHeader), and the next committed
 *   transaction's commit record starts after it (commit order is WAL order);
 * - an idle point (`advance`, in process only): the keepalive's WAL end (the
 *   walsender's sentPtr, how far it decoded and sent) less one, taken between
 *   transactions with every packet taken; the server had decoded and sent
 *   every transaction committed before that end, so the
 *   next commit starts at or after it. The slot is confirmed there on the
 *   same ground (a later commit before it would be skipped on restart);
 * - a placement (attach's version 0 one byte before the slot's consistent
 *   point, where a commit the snapshot lacks may start: versionZeroLsn; a join's
 *   or resync's anchor: another replica's position, or the bus's recorded
 *   head, a packet or an idle point): the assembler numbers only transactions
 *   whose commit LSN is past the resume point, so packet 1 is past it, and
 *   an anchor is one of the cases above.
 * Migrations write no position of their own (their marker is a packet), and
 * a packet's parts or a bus message of several packets share or keep their
 * packets' headers.
 */
export function movesPast(held: ResumePoint, packet: ResumePoint): boolean {
  return compareLsn(packet.lsn, held.lsn) > 0;
}

/** The apply machine's refusal of a packet that does not move past the replica's position. */
export class PacketNotPastError extends Error {
  constructor(
    readonly held: ResumePoint,
    readonly packet: ResumePoint,
  ) {
    super(
      `packet version ${packet.version} at ${packet.lsn} is not past version ${held.version} at ${held.lsn}`,
    );
    this.name = 'PacketNotPastError';
  }
}
