import type { Lsn } from '../protocol/index.js';
import type { TableName } from './catalog-table.js';

/** A position of the stream: a version and the LSN it ends at. */
export interface StreamPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

/**
 * One replica's resync lock, held on a session of its own for the whole of
 * its resync or join; what it writes runs on that session, so a guard that
 * died writes nothing.
 */
export interface ResyncGuardPort {
  readonly replica: string;
  /** The guard session's backend pid on the replica (a copy checks it before committing). */
  readonly pid: number;
  /**
   * Empties the replicated tables and positions the replica at `anchor`, in
   * one transaction; null leaves it without a position (placed once copied).
   */
  reset(stream: string, tables: readonly TableName[], anchor: StreamPosition | null): Promise<void>;
  /** Empties and forgets what an interrupted join copied, in one transaction. */
  clearCopies(stream: string): Promise<void>;
  /** Positions a copied joining replica at `anchor` (it must have none yet). */
  place(stream: string, anchor: StreamPosition): Promise<void>;
  /** Takes a placed replica's position back. */
  unplace(stream: string): Promise<void>;
  /** Throws when the guard's session ended meanwhile. */
  check(): void;
  release(): Promise<void>;
}
