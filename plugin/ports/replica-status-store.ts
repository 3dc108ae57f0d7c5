import type { StreamPosition } from './resync-guard.js';

/** The sidecar's last note on a replica (state and last error). */
export interface ReplicaNote {
  readonly replica: string;
  readonly state: string;
  readonly error: string | null;
  readonly errorAt: Date | null;
}

/** A replica as the active sidecar last reported it, for a joining attach. */
export interface ReplicaReport {
  readonly replica: string;
  /** The identity of the database the sidecar applies to under that name. */
  readonly database: string | null;
  /** Not stale, neither marked nor resyncing. */
  readonly ok: boolean;
}

/** What the primary records about each replica of a stream (`lockstep.replica_status`). */
export interface ReplicaStatusStore {
  /** Replicas marked stale (among `names` when given). */
  staleReplicas(stream: string, names?: readonly string[]): Promise<string[]>;
  /** Ends the stale marks of `names`. */
  clearStale(stream: string, names: readonly string[]): Promise<void>;
  /** Marks a replica stale durably (keeping an earlier mark's time). */
  markStale(stream: string, replica: string): Promise<void>;
  /**
   * Ends the stale marks of `names` only while the stream's epoch is `epoch`
   * (null: any), locking the stream row meanwhile; whether the fence held.
   */
  clearStaleFenced(
    stream: string,
    names: readonly string[],
    epoch: number | null,
  ): Promise<boolean>;
  /** Records reset replicas' new position. */
  recordPositions(
    stream: string,
    replicas: readonly string[],
    position: StreamPosition,
  ): Promise<void>;
  /** Reports on `names` written at or after `since` (the primary's clock, as text). */
  reportsSince(stream: string, names: readonly string[], since: string): Promise<ReplicaReport[]>;
  /** Every replica's note. */
  notes(stream: string): Promise<ReplicaNote[]>;
  /** Removes every replica's row of the stream. */
  forget(stream: string): Promise<void>;
}
