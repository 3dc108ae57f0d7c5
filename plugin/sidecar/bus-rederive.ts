import { LockstepError } from '../ports/lockstep-error.js';
import { type Lsn, lsnBefore, lsnToBigInt, type ResumePoint } from '../protocol/index.js';

/**
 * How many packets the primary stream assembles from the slot's WAL whose
 * commits lie from `from` through `through` (LSNs; `from` the slot's
 * confirmed point). Numbering is a function of the WAL (packet-assembler.ts:
 * one version per transaction with something replicated), so this is how
 * many versions the packets there had when first published.
 */
export type PacketsBetween = (from: Lsn, through: Lsn) => Promise<number>;

/** Where an empty bus resumes from when packets between the slot and the head are re-derived. */
export interface Rederived {
  readonly resume: ResumePoint;
  /** How many packets below the recorded head are published again. */
  readonly packets: number;
}

/**
 * Where an empty bus resumes when the recorded head is past the slot's
 * confirmed point. The head is recorded at JetStream's ack, the slot
 * confirmed only `bus.serverSyncInterval` later, once the servers synced:
 * after a power loss of the NATS nodes the stream can come back without the
 * packets in between, which the slot still holds. They are re-derived from
 * the slot with the versions they had: the head's version less the packets
 * committed from the slot's point through the head's LSN. Null when nothing
 * lies in between (retention emptied an idle stream: the head, or its idle
 * point, is where the slot is confirmed or about to be), the head being
 * where numbering goes on from.
 */
export async function rederiveBelowHead(
  head: ResumePoint,
  confirmed: Lsn | null,
  count: PacketsBetween | undefined,
): Promise<Rederived | null> {
  // Version 0 is attach's point: numbering starts there, nothing was published before it.
  if (!confirmed || head.version === 0) return null;
  if (lsnToBigInt(head.lsn) < lsnToBigInt(confirmed)) return null;
  if (!count) throw cannotRederive(head, confirmed, 'nothing here can count them');
  const packets = await count(confirmed, head.lsn);
  if (packets === 0) return null;
  if (packets > head.version)
    throw cannotRederive(
      head,
      confirmed,
      `the slot's WAL holds ${packets} packets there, more than the head's version`,
    );
  // Transactions committed before the slot's point are not in its WAL; from one before it, none is skipped.
  const lsn = lsnBefore(confirmed);
  return { resume: { version: head.version - packets, lsn }, packets };
}

function cannotRederive(head: ResumePoint, confirmed: Lsn, why: string): LockstepError {
  return new LockstepError({
    node: 'bus',
    problem: `the bus is empty, and the packets between the slot's confirmed point ${confirmed} and the recorded head, version ${head.version} (${head.lsn}), cannot be published again with their versions: ${why}`,
    fix: 'lockstep attach --resync for every replica behind the head, after removing the bus stream',
  });
}
