import type { Lsn } from '../protocol/index.js';
import type { StreamPosition } from './resync-guard.js';

/** A replica's hold on the slot while attach copies it (lockstep.join_holds). */
export interface JoinHold {
  readonly replica: string;
  readonly version: number;
  readonly lsn: Lsn;
  /** host:pid of the attach that holds it. */
  readonly holder: string;
  readonly createdAt: string;
  /** Whether that attach's session on the primary still runs (false: it was killed). */
  readonly holderAlive: boolean;
}

/** The join holds of the primary, read and dropped on any session. */
export interface JoinHoldsStore {
  /** Whether the table exists (a control schema older than it has none). */
  exists(): Promise<boolean>;
  /** Every hold of `stream`, with whether its attach still runs. */
  read(stream: string): Promise<JoinHold[]>;
  /** Drops holds of `replicas` (all when omitted) whatever wrote them. */
  drop(stream: string, replicas?: readonly string[]): Promise<void>;
}

/** The holds one attach keeps, on a session of its own that stays open until they are dropped. */
export interface JoinHoldSession {
  /** Holds the slot at `anchor` for each replica, replacing a hold an earlier attach left. */
  hold(replicas: readonly string[], anchor: StreamPosition): Promise<void>;
  /** Drops the replicas' holds (those this session wrote) and ends the session. */
  release(replicas: readonly string[]): Promise<void>;
}
