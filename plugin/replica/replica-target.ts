import type { BusyAnswer } from '../ports/busy-answer.js';
import type { Lsn, PacketPart } from '../protocol/index.js';

export type { BusyAnswer } from '../ports/busy-answer.js';

/** A replica's durable position. */
export interface ReplicaPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

/** The replica side of the apply path (the Postgres adapter implements it). */
export interface ReplicaTarget {
  readonly node: string;
  /** Updates and deletes of rows missing on the replica that `conflicts: "overwrite"` skipped, so far. */
  readonly ignoredMissingRows: number;
  /** The identity of the database last connected to (null before), reported in status. */
  readonly databaseId?: string | null;
  open(): Promise<ReplicaPosition>;
  /**
   * Applies whole packets as one transaction that ends by storing `position`;
   * committed, or prepared as `prepareAs` (a two-phase round's gid).
   */
  applyBatch(
    packets: ReadonlyArray<{ changes: PacketPart['changes']; version: number; lsn: Lsn }>,
    position: ReplicaPosition,
    commitTime: string,
    prepareAs?: string,
  ): Promise<void>;
  /**
   * Streams a large packet through an open transaction: begin (the replica
   * must hold version `from`: checked under a row lock, see `applyBatch`),
   * apply its parts, commit (or prepare).
   */
  begin(from: number): void;
  apply(changes: PacketPart['changes'], version: number, lsn: Lsn): Promise<void>;
  commit(position: ReplicaPosition, commitTime: string, prepareAs?: string): Promise<void>;
  /** Reads the durable position again. */
  position(): Promise<ReplicaPosition>;
  /** Stores a later LSN for the version held (an idle point of the stream): no data changes. */
  advance(position: ReplicaPosition): Promise<void>;
  rollback(): Promise<void>;
  close(): Promise<void>;
  /** Drops the connection at once, without waiting for the server (it stopped answering). */
  abort(): void;
  /**
   * Grows whenever the replica's server answered a statement sent on the
   * connection: the apply deadline counts from its last answer, so a long
   * apply the replica keeps answering is not taken for a frozen replica.
   * Without it, a step is bounded as a whole.
   */
  heard?(): number;
  /**
   * Asked when the replica answered nothing for half the deadline: busy when
   * its server still works on the statement sent (an index build, a table
   * rewrite: slow, not silent); not when it did not answer the question
   * within `boundMs` (a frozen host), or its backend waits on a lock, a
   * synchronous standby or this connection, sleeps, or is idle. Without it,
   * silence is dropped.
   */
  busy?(boundMs: number): Promise<BusyAnswer>;
}
