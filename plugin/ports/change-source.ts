import type { Lsn } from '../protocol/index.js';
import type { DecodedMessage } from './decoded-message.js';

/** Receives decoded messages in stream order; called synchronously, one at a time. */
export type DecodedMessageHandler = (message: DecodedMessage) => void;

/**
 * Told the end of WAL the server has decoded (a keepalive's), in order with
 * the messages: every transaction that committed before it and touched the
 * publication was handed to the message handler already.
 */
export type WalEndHandler = (walEnd: Lsn) => void;

/**
 * A logical-replication source (the port the Postgres adapter implements).
 * It never acknowledges on its own: only `acknowledge` moves the slot.
 */
export interface ChangeSource {
  /** Starts streaming; resolves once the server has started replication. */
  start(
    onMessage: DecodedMessageHandler,
    onError: (error: Error) => void,
    onWalEnd?: WalEndHandler,
  ): Promise<void>;
  /** Stops reading from the server (back-pressure); the connection stays open. */
  pause(): void;
  /** Resumes reading after `pause`. */
  resume(): void;
  /**
   * Records that every transaction whose commit record is at or before `lsn`
   * is durably applied; the slot may release WAL up to there.
   */
  acknowledge(lsn: Lsn): void;
  /** Ends the replication connection. Safe to call more than once. */
  stop(): Promise<void>;
}
