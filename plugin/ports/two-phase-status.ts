/** Two-phase rounds as `status` reports them. */
export interface TwoPhaseStatus {
  readonly roundsCommitted: number;
  readonly roundsAborted: number;
  /** The round refused and being retried (the stream is held at `from`), with each refusal's reason. */
  readonly held: {
    readonly gid: string;
    readonly from: number;
    readonly to: number;
    readonly attempts: number;
    readonly refusals: Readonly<Record<string, string>>;
  } | null;
}
