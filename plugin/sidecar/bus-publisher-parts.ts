import type { Logger } from 'pino';
import type { FaultHook } from '../coordinator/fault-point.js';
import type { TwoPhasePacket } from '../coordinator/two-phase-coordinator.js';
import type { PacketLog } from '../ports/packet-bus.js';
import type { PrimaryStream } from '../primary/primary-stream.js';
import type { Lsn, ResumePoint } from '../protocol/index.js';
import type { PacketsBetween } from './bus-rederive.js';
import type { PauseSignal, SidecarLock } from './sidecar-parts.js';

/** The stream's head as recorded: a packet, or an idle point after it (no commit time of its own). */
export interface RecordedHead {
  readonly version: number;
  readonly lsn: Lsn;
  readonly commitTime: string | null;
}

/** What publishing to the bus is built from (the composition root wires the adapters). */
export interface BusPublisherParts {
  /** Opens the primary stream from a resume point; keepalives answer with `durable`. */
  openStream(resume: ResumePoint, durable: Lsn): Promise<PrimaryStream>;
  /** Connects to the bus and opens the packet subject (the stream made sure of). */
  openLog(): Promise<PacketLog>;
  /** Where numbering goes on while the bus holds no packet: the recorded head, else attach's point. */
  startPoint(): Promise<ResumePoint | null>;
  /** The slot's confirmed point: WAL before it is gone. */
  slotConfirmedLsn(): Promise<Lsn | null>;
  /** Counts packets in the slot's WAL, so an empty bus below the recorded head re-derives them (bus-rederive.ts). */
  readonly packetsBetween?: PacketsBetween;
  /**
   * How long the bus servers may hold an acknowledged message before writing
   * it to disk (`bus.serverSyncInterval`, ms; 0: they sync before acknowledging).
   */
  readonly serverSyncIntervalMs: number;
  /** The coordinator lock: one publisher per stream. */
  readonly lock: SidecarLock;
  /** Since when the stream is paused (`lockstep pause`), or null while it runs. */
  pausedSince(): Promise<Date | null>;
  /** Word at once that the stream was paused or resumed. */
  readonly pauses: PauseSignal;
  readonly log: Logger;
  /**
   * Records the last packet on the bus as the stream's head (what `status`
   * shows, where an emptied bus goes on from); its LSN may be a later idle
   * point of that packet (nothing replicated committed in between).
   */
  recordHead(head: RecordedHead): Promise<void>;
  /** Closes what the parts hold open (the status connection). */
  close(): Promise<void>;
  /**
   * `after-publish`: each time JetStream acknowledged a whole packet, before
   * the slot is confirmed; `mid-change`: each time it acknowledged a fragment
   * of a change but its last.
   */
  readonly fault?: FaultHook;
  /** A two-phase packet is wholly on the bus: its round may run (the agents park at it). */
  onTwoPhasePacket?(packet: TwoPhasePacket): void;
}
