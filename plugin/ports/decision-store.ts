/** A decision as the log holds it. */
export type Decision = 'commit' | 'abort';

/** What a round's decision row records besides the decision. */
export interface DecisionRecord {
  readonly gid: string;
  readonly round: number;
  readonly versionFrom: number;
  readonly versionTo: number;
  readonly participants: readonly string[];
}

/**
 * The durable decision log (on the primary): a round's commit point, and
 * what recovery finishes prepared gids by (presumed abort: no row is abort).
 */
export interface DecisionStore {
  /**
   * Records `decision` unless one is recorded already; returns the decision
   * that holds. Throws `DeposedError` when fenced out (nothing was written).
   */
  decide(record: DecisionRecord, decision: Decision): Promise<Decision>;
  /** The decisions recorded for some gids. */
  read(gids: readonly string[]): Promise<Map<string, Decision>>;
  /** The highest round number the stream has used (0 when none). */
  lastRound(): Promise<number>;
  /**
   * Forgets old decisions of gids prepared nowhere; returns how many. Only the
   * nodes in `listed.nodes` were looked at: a commit decision naming any other
   * participant is kept, since its gid may still be prepared there.
   */
  prune(listed: ListedPrepared, olderThanSeconds: number): Promise<number>;
  close(): Promise<void>;
}

/** What one recovery pass saw: the nodes it listed, and every gid prepared on them. */
export interface ListedPrepared {
  readonly nodes: readonly string[];
  readonly gids: readonly string[];
}
