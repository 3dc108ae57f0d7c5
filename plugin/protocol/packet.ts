import type { Change } from './change.js';
import type { Lsn } from './lsn.js';

/** How a packet is delivered: independently per replica, or all-or-none across replicas. */
export type Phase = 'one' | 'two';

/** What is known about a packet from its first byte on (pgoutput's BEGIN). */
export interface PacketHeader {
  /** Dense stream version: exactly one more than the previous packet's. */
  readonly version: number;
  /** LSN of the primary's commit record (the transaction's final LSN); unique and increasing. */
  readonly lsn: Lsn;
  /** Primary transaction id. */
  readonly xid: number;
  /** Commit time on the primary, ISO-8601 UTC with microseconds. */
  readonly commitTime: string;
}

/** One committed primary transaction that touched replicated tables (DESIGN.md, "Packets"). */
export interface Packet extends PacketHeader {
  readonly phase: Phase;
  readonly changes: readonly Change[];
}

/**
 * A slice of a packet as it streams. Large transactions arrive in several parts
 * so they never have to be held in memory; a small one is a single part that is
 * both first and final. The phase is known only once the whole transaction has
 * been seen, so it is carried by the final part.
 */
export interface PacketPart {
  readonly header: PacketHeader;
  /** 0 for the first part of a packet, then 1, 2, … */
  readonly index: number;
  readonly changes: readonly Change[];
  /** Set on the last part only: the packet's phase. */
  readonly final: { readonly phase: Phase } | null;
}

/** The point a stream resumes after: the packet `version` committed at `lsn` is already applied. */
export interface ResumePoint {
  readonly version: number;
  readonly lsn: Lsn;
}

/** Joins parts into whole packets; for consumers that do not stream large transactions. */
export class PacketCollector {
  private header: PacketHeader | null = null;
  private changes: Change[] = [];
  private nextIndex = 0;

  /** Adds a part; returns the packet when `part` completes it. Throws on out-of-order parts. */
  add(part: PacketPart): Packet | null {
    // By version, not identity: parts decoded from separate bus messages carry equal, distinct headers.
    if (
      part.index !== this.nextIndex ||
      (this.header && part.header.version !== this.header.version)
    ) {
      throw new Error(
        `packet part out of order: got version ${part.header.version} part ${part.index}, ` +
          `expected ${this.header ? `version ${this.header.version} ` : ''}part ${this.nextIndex}`,
      );
    }
    this.header = part.header;
    for (const change of part.changes) this.changes.push(change);
    this.nextIndex++;
    if (!part.final) return null;
    const { version, lsn, xid, commitTime } = part.header;
    // Field by field: a header may compute its commit time in a getter, which a spread would drop.
    const packet: Packet = {
      version,
      lsn,
      xid,
      commitTime,
      phase: part.final.phase,
      changes: this.changes,
    };
    this.header = null;
    this.changes = [];
    this.nextIndex = 0;
    return packet;
  }
}
