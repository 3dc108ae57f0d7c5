import type { Lsn } from '../protocol/index.js';
import type { TwoPhaseStatus } from './two-phase-status.js';

/** A stream's pause time before and after a pause or resume (null: running). */
export interface PauseChange {
  readonly before: Date | null;
  readonly after: Date | null;
}

/** What a stream is attached with: its slot's start and its replicated set. */
export interface StreamRecord {
  readonly slot: string;
  readonly publication: string;
  readonly startLsn: Lsn;
  /** The `tables` patterns. */
  readonly tables: readonly string[];
  readonly captureDdl: boolean;
}

/** The stream row as `status` shows it, with the primary's WAL position. */
export interface StreamHead {
  readonly version: number;
  readonly lsn: Lsn | null;
  readonly commitTime: Date | null;
  readonly walLsn: Lsn;
  readonly twoPhase: TwoPhaseStatus | null;
  readonly activeSidecar: string | null;
  readonly activeSince: Date | null;
  readonly pausedAt: Date | null;
}

/** The stream rows on the primary (`lockstep.streams`): start, replicated set, pause, activity. */
export interface StreamsStore {
  /** Whether the control schema exists on the node at all. */
  exists(): Promise<boolean>;
  /** Where the stream's slot started; null when it is not attached. */
  startLsn(stream: string): Promise<Lsn | null>;
  /** The replicated set recorded (null fields: attached before it was recorded); undefined when not attached. */
  replicatedSet(
    stream: string,
  ): Promise<{ tables: string[] | null; captureDdl: boolean | null } | undefined>;
  /** Records the set of a stream attached before it was recorded. */
  recordReplicatedSet(
    stream: string,
    tables: readonly string[],
    captureDdl: boolean,
  ): Promise<void>;
  /** Records the stream at its new slot's start (version 0), replacing an earlier record. */
  record(stream: string, record: StreamRecord): Promise<void>;
  /** The primary's now (as text) and the recorded active sidecar; undefined when not attached. */
  activity(stream: string): Promise<{ since: string; owner: string | null } | undefined>;
  /**
   * Pauses or resumes the stream and notifies a running sidecar, in one
   * transaction; undefined when the stream is not attached.
   */
  writePause(stream: string, paused: boolean): Promise<PauseChange | undefined>;
  /** The stream row for `status`; undefined when not attached. */
  head(stream: string): Promise<StreamHead | undefined>;
  /** Removes the stream row. */
  forget(stream: string): Promise<void>;
}
