/** What a replica's server said when asked whether it still works on the statement sent. */
export interface BusyAnswer {
  readonly busy: boolean;
  /** What the statement waits on, if anything (`type:event` of pg_stat_activity). */
  readonly waitEvent: string | null;
}
