import type { PacketPart, ResumePoint } from '../protocol/index.js';

/** Why a batch ends after a part: it is full (or the next part cannot join it), or its time is up. */
export type BatchCut = 'rows' | 'time';

/**
 * Where a replica agent reads the stream from: the packets (in parts) by a
 * sequence number that never repeats, where batches end, and its own cursor,
 * which tells the source what it still needs. The in-process packet window
 * is one implementation; a network one (a packet bus) can be another. An
 * agent whose next packet is no longer held asks for the stream to be
 * re-read from its position instead (a rewind; see the sidecar).
 */
export interface DeltaSource {
  /** Increases each time the source restarts from an earlier point: cursors must be located again. */
  readonly epoch: number;
  /** Sequence number of the oldest part held. */
  readonly start: number;
  /** The version of the newest part held, or null when none is. */
  readonly newestVersion: number | null;
  /** The stream's latest idle point (nothing replicated since up to there), or null. */
  readonly idlePoint: ResumePoint | null;
  /** The part at `seq`, if held. */
  at(seq: number): PacketPart | undefined;
  /**
   * Where an agent holding `version` continues: the first part of the packet
   * after it, or the end when it has everything held; null when that packet
   * is no longer held (the agent needs the stream re-read).
   */
  locate(version: number): number | null;
  /** Whole packets (final parts) held from `from` up to, not including, `to`. */
  packetsBetween(from: number, to: number): number;
  /** Whether (and why) a batch ends after the part at `seq`. */
  cutAfter(seq: number): BatchCut | null;
  /** Ends a batch after the newest part held, for every agent (one that waited long enough for more). */
  cutNewest(): void;
  /** Sets an agent's cursor (the next sequence it reads), or removes it while the agent is inactive. */
  setCursor(agent: string, seq: number | null): void;
  /** Resolves when something changes: a new part, a cursor move, a restart, an idle point. */
  changed(): Promise<void>;
}
