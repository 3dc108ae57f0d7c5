/** A lockstep gid prepared on a node. */
export interface PreparedGid {
  readonly gid: string;
  /** When it was prepared (ISO-8601). */
  readonly preparedAt: string;
  /** Seconds since then, by the node's clock. */
  readonly ageSeconds: number;
  /** A stream round's, or a migration's (`lockstep migrate`/`exec`). */
  readonly kind: 'stream' | 'migration';
}

/** Phase two on one node: its prepared lockstep transactions, committed or rolled back. */
export interface PhaseTwoNode {
  readonly node: string;
  /** The stream's gids prepared on the node (its own database only): stream rounds' and migrations'. */
  list(stream: string): Promise<ReadonlyArray<PreparedGid>>;
  /** COMMIT PREPARED; a gid no longer prepared counts as done when it committed, else NotLandedError. */
  commit(gid: string): Promise<void>;
  /** ROLLBACK PREPARED; a gid not prepared needs nothing. */
  rollback(gid: string): Promise<void>;
  close(): Promise<void>;
}
