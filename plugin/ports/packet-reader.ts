import type { BusPiece } from '../protocol/change-fragments.js';

/** Parts read from a packet log in stream order, from the packet a reader asked for. */
export interface PacketFeed {
  /**
   * The next message's part, or fragment of a change; waits while the log has nothing newer. Throws a
   * `LockstepError` when the log cannot go on (its next part is gone, or it
   * holds something the reader cannot take).
   */
  next(): Promise<BusPiece>;
  /**
   * The packet's count of changes through the piece {@link next} gave last,
   * when the log says it (the piece ends its message); null otherwise.
   */
  changesThrough?(): number | null;
  /** Stops reading; a pending {@link next} may reject. */
  close(): Promise<void>;
}

/**
 * A durable, ordered log of packets (the packet bus) as a replica agent reads
 * it. It never skips: a feed starts at the first part of the version asked
 * for, and one that is no longer held is an error, not a later start.
 */
export interface PacketReader {
  /**
   * A feed from the first part of `version`. Throws a `LockstepError` naming
   * `replica` when the log no longer holds it (retention removed it): the
   * replica needs a resync.
   */
  readFrom(version: number, replica: string): Promise<PacketFeed>;
  close(): Promise<void>;
}

/**
 * The lock that makes one agent per replica: a session lock held on the
 * replica itself, so it is free the moment its holder dies.
 */
export interface ReplicaLockPort {
  readonly held: boolean;
  /** Takes the lock if it is free; false when another agent holds it. */
  tryAcquire(): Promise<boolean>;
  /** Calls `listener` once the lock is lost while held (its session ended). */
  onLost(listener: () => void): void;
  /** Asks the lock's session whether it still holds the lock; false (and lost) when it cannot tell. */
  verify(): Promise<boolean>;
  release(): Promise<void>;
}
