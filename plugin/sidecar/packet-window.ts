import type { BatchCut, DeltaSource } from '../ports/delta-source.js';
import { compareLsn, isLargeRow, type PacketPart, type ResumePoint } from '../protocol/index.js';

export type { BatchCut } from '../ports/delta-source.js';

/**
 * The recent stream, shared by every replica agent. Parts are numbered by a
 * sequence that never repeats; each active agent has a cursor. Parts stay
 * while they fit in `maxChanges` (so a slightly lagging replica's delta is
 * served from memory); beyond that the oldest part leaves once every active
 * cursor has passed it, and the stream waits for room (back-pressure) while
 * the slowest active agent still needs it. Inactive (halted) agents hold
 * nothing back: when they return, they find their next packet here or ask for
 * the stream to be rewound.
 *
 * The window also marks where batches end (see {@link cutAfter}), so replicas
 * in step batch the very same packets and share the work of planning them.
 */
export class PacketWindow implements DeltaSource {
  /** Held parts start at `head` (dropping from the front is O(1); the array is compacted now and then). */
  private parts: PacketPart[] = [];
  /** Changes pushed before each held part (aligned with `parts`): how far ahead the stream is. */
  private pushedBefore: number[] = [];
  /** What each held part (aligned with `parts`) counts against `maxChanges` (see {@link weightOf}). */
  private weights: number[] = [];
  /** Changes pushed since the last reset. */
  private pushed = 0;
  private head = 0;
  private base = 0;
  private changes = 0;
  private readonly cursors = new Map<string, number>();
  /** Sequence numbers after which a batch ends, and why. */
  private readonly cuts = new Map<number, BatchCut>();
  /** Rows of whole one-phase packets pushed since the last cut. */
  private rowsSinceCut = 0;
  private waiters: Array<() => void> = [];
  /** Increases each time the window is reset (the stream restarted); cursors must be located again. */
  epoch = 0;
  /** The stream's latest idle point in this epoch (see `PrimaryStream.idlePoint`). */
  private idle: ResumePoint | null = null;

  /**
   * @param maxChanges changes held for deltas before the oldest may leave
   * @param batchRows rows after which the window cuts a batch (the agents' `batchRows`)
   * @param maxLead changes the stream may run ahead of the most advanced agent
   */
  constructor(
    private readonly maxChanges: number,
    private readonly batchRows = Number.POSITIVE_INFINITY,
    private readonly maxLead = Number.POSITIVE_INFINITY,
  ) {}

  /** Sequence number of the oldest part held. */
  get start(): number {
    return this.base;
  }

  /** Sequence number the next pushed part will get. */
  get end(): number {
    return this.base + this.parts.length - this.head;
  }

  /** Number of parts held. */
  private get size(): number {
    return this.parts.length - this.head;
  }

  /** The part at `seq`, if still held. */
  at(seq: number): PacketPart | undefined {
    return seq >= this.base ? this.parts[this.head + seq - this.base] : undefined;
  }

  /** Whole packets (final parts) held from sequence `from` up to, not including, `to`. */
  packetsBetween(from: number, to: number): number {
    let count = 0;
    for (let seq = Math.max(from, this.base); seq < to; seq++) if (this.at(seq)?.final) count++;
    return count;
  }

  /** Version of the newest complete or partial packet held, or null. */
  get newestVersion(): number | null {
    // `size`, not the array's length: evicted parts leave undefined slots before `head`.
    return this.size > 0 ? (this.parts[this.parts.length - 1] as PacketPart).header.version : null;
  }

  /** Adds a part from the stream. Call {@link waitForRoom} first. */
  push(part: PacketPart): void {
    const seq = this.end;
    this.parts.push(part);
    this.pushedBefore.push(this.pushed);
    const weight = weightOf(part);
    this.weights.push(weight);
    this.pushed += part.changes.length;
    this.changes += weight;
    if (part.index === 0 && part.final?.phase === 'one') {
      this.rowsSinceCut += part.changes.length;
      if (this.rowsSinceCut >= this.batchRows) this.cut(seq, 'rows');
    } else {
      // Parts of large or two-phase packets are never batched: batches start afresh after them.
      this.cut(seq, 'rows');
    }
    this.wake();
  }

  /**
   * Why a batch ends after part `seq`, if one does: `rows` (the batch is full,
   * or the next part cannot join it) or `time` (an agent waited long enough at
   * the newest part); null when none ends there.
   */
  cutAfter(seq: number): BatchCut | null {
    return this.cuts.get(seq) ?? null;
  }

  /** Ends a batch after the newest part held, for every agent (one that waited `batchMs` for more). */
  cutNewest(): void {
    if (this.size > 0) this.cut(this.end - 1, 'time');
    this.wake();
  }

  private cut(seq: number, why: BatchCut): void {
    if (!this.cuts.has(seq)) this.cuts.set(seq, why);
    this.rowsSinceCut = 0;
  }

  /** Sets an agent's cursor (the next sequence it will read), or removes it while the agent is inactive. */
  setCursor(agent: string, seq: number | null): void {
    if (seq === null) this.cursors.delete(agent);
    else this.cursors.set(agent, seq);
    this.wake();
  }

  /**
   * Where an agent at `version` continues: the first part of the packet after
   * it, or `end` when it has everything held. `null` when that packet is no
   * longer held (the agent needs the stream rewound).
   */
  locate(version: number): number | null {
    let firstHeld = this.head;
    while (firstHeld < this.parts.length && (this.parts[firstHeld] as PacketPart).index !== 0)
      firstHeld++;
    if (firstHeld === this.parts.length) return this.size === 0 ? this.end : null;
    if ((this.parts[firstHeld] as PacketPart).header.version > version + 1) return null;
    // Parts are in version order: binary search for the first part of a later packet.
    let lo = firstHeld;
    let hi = this.parts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.parts[mid] as PacketPart).header.version <= version) lo = mid + 1;
      else hi = mid;
    }
    // Its first part already left the window: it must be read again from the stream.
    if (lo < this.parts.length && (this.parts[lo] as PacketPart).index !== 0) return null;
    return this.base + lo - this.head;
  }

  /**
   * True when another part may be pushed: the window is within its bound, and
   * the stream is less than `maxLead` changes ahead of the most advanced agent.
   * The lead bound keeps start-up and catch-up a pipeline: without it the
   * sidecar would decode a whole window ahead while the replicas wait for
   * their first batch.
   */
  hasRoom(): boolean {
    this.evict();
    if (this.changes >= this.maxChanges && this.size > 0) return false;
    let fastest = -1;
    for (const seq of this.cursors.values()) fastest = Math.max(fastest, seq);
    if (fastest < this.base || fastest >= this.end) return true;
    const lead = this.pushed - (this.pushedBefore[this.head + fastest - this.base] as number);
    return lead < this.maxLead;
  }

  /** Resolves when {@link hasRoom}, or when the window is reset. */
  async waitForRoom(): Promise<void> {
    const epoch = this.epoch;
    while (!this.hasRoom() && this.epoch === epoch) await this.changed();
  }

  /**
   * The newest point an agent that holds exactly `version` may store as its
   * position (no replicated commit up to `lsn` is missing); null if none.
   */
  get idlePoint(): ResumePoint | null {
    return this.idle;
  }

  /** Records an idle point of the stream (a newer one than the last), waking the agents. */
  markIdle(point: ResumePoint): void {
    if (this.idle && compareLsn(point.lsn, this.idle.lsn) <= 0) return;
    this.idle = point;
    this.wake();
  }

  /** Resolves when something changes: a push, a cursor move, a reset, an idle point. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops everything held (the stream restarts from an earlier point); sequence numbers go on. */
  reset(): void {
    this.base = this.end;
    this.parts = [];
    this.pushedBefore = [];
    this.weights = [];
    this.pushed = 0;
    this.head = 0;
    this.changes = 0;
    this.cuts.clear();
    this.rowsSinceCut = 0;
    this.idle = null;
    this.epoch++;
    this.wake();
  }

  private evict(): void {
    let min = Number.POSITIVE_INFINITY;
    for (const seq of this.cursors.values()) min = Math.min(min, seq);
    while (this.size > 0 && this.base < min) {
      const part = this.parts[this.head] as PacketPart;
      // Parts of a large (multi-part) packet leave as soon as every active agent has them: a
      // replica that needs them later re-reads the slot, and they would crowd out small packets.
      const large = part.index > 0 || part.final === null;
      // (With no active agent at all, nobody has passed it: only the size bound applies.)
      if (this.changes < this.maxChanges && !(large && Number.isFinite(min))) break;
      this.changes -= this.weights[this.head] as number;
      this.parts[this.head++] = undefined as unknown as PacketPart;
      this.cuts.delete(this.base);
      this.base++;
    }
    if (this.head > 4096 && this.head * 2 > this.parts.length) {
      this.parts = this.parts.slice(this.head);
      this.pushedBefore = this.pushedBefore.slice(this.head);
      this.weights = this.weights.slice(this.head);
      this.head = 0;
    }
  }

  private wake(): void {
    // Called per part pushed and per cursor move: no new array while nobody waits.
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Bytes of a large row that count as one change against the window's bound. */
const BYTES_PER_CHANGE = 1024;

/**
 * What a part counts against the window's bound: its changes, and a large
 * row (see `isLargeRow`) as many changes as it has KB, so that the window
 * holds a bounded amount of memory (a 100 MB row leaves as soon as every
 * replica has it, and the stream waits while it is held) rather than a bounded
 * number of rows however large.
 */
function weightOf(part: PacketPart): number {
  let weight = part.changes.length;
  for (const change of part.changes)
    if ('row' in change && isLargeRow(change.row))
      weight += Math.floor((change.row.size as number) / BYTES_PER_CHANGE);
  return weight;
}
