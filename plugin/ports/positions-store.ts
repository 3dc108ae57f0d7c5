import type { Lsn } from '../protocol/index.js';

/** A replica's applied position in a stream. */
export interface AppliedPosition {
  readonly version: number;
  readonly lsn: Lsn;
  readonly commitTime: Date | null;
}

/** A replica's position rows (`lockstep.applied`), outside the apply path. */
export interface PositionsStore {
  /** Whether the table exists on the node (a control schema is there). */
  exists(): Promise<boolean>;
  /** The replica's position in the stream; null without one. */
  read(stream: string): Promise<AppliedPosition | null>;
  /** Version 0 at `lsn` unless the replica has a position; how many rows were written (0 or 1). */
  placeAtStart(stream: string, lsn: Lsn): Promise<number>;
  /** Removes the replica's position. */
  forget(stream: string): Promise<void>;
}
