import type { Lsn } from '../protocol/index.js';
import type { SlotHealth } from './slot-health.js';

/** A slot's position as the primary reports it. */
export interface SlotPosition {
  readonly confirmedFlushLsn: Lsn | null;
  readonly restartLsn: Lsn | null;
  readonly active: boolean;
}

/** A newly created logical slot. */
export interface CreatedSlot {
  /** The LSN from which the slot streams every committed transaction. */
  readonly consistentPoint: Lsn;
  /**
   * A snapshot that sees exactly the data committed before `consistentPoint`
   * (only with `exportSnapshot`), usable with `SET TRANSACTION SNAPSHOT` until
   * {@link release} is called.
   */
  readonly snapshotName: string | null;
  /** Closes the replication connection (and with it the exported snapshot). */
  release(): Promise<void>;
}

/** A transaction the creation of a logical slot waits for. */
export interface SlotBlocker {
  readonly pid: number;
  readonly state: string;
  readonly application: string;
  readonly user: string;
  readonly ageSeconds: number;
}

/** How a slot is created. */
export interface SlotCreation {
  readonly exportSnapshot?: boolean;
  /** Dropped by the server when its session ends (a snapshot slot of a copy: a killed attach leaves nothing). */
  readonly temporary?: boolean;
  readonly node?: string;
  /** Told which running transactions the creation waits for, should it wait. */
  readonly onBlocked?: (blockers: readonly SlotBlocker[]) => void;
  /**
   * The server is asked about the creation every so many ms (applyTimeoutMs):
   * one that does not answer (a frozen host) fails it; waiting goes on.
   */
  readonly boundMs?: number;
}

/** The primary's replication slots, read and dropped on one session. */
export interface ReplicationSlots {
  /** The slot's position, or null when it does not exist. */
  read(slot: string): Promise<SlotPosition | null>;
  /** The stream's slot as pg_replication_slots shows it; null when the stream is not attached. */
  health(stream: string): Promise<SlotHealth | null>;
  /** Drops the slot if it exists (waiting briefly for a just-stopped consumer); whether it did. */
  drop(slot: string): Promise<boolean>;
  /** Ends the walsender streaming from the slot, if one does. */
  terminateConsumer(slot: string): Promise<void>;
}
