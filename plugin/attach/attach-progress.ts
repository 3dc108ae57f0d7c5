/** A step's details (node, replica, table, version, fix, …): views and logs show them as fields. */
export type StepFields = Readonly<
  Record<string, string | number | boolean | null | readonly (string | number)[]>
>;

/** Tells a step of an attach: a short constant phrase, the details in `fields`. */
export type StepReporter = (message: string, fields?: StepFields) => void;

/** Progress callbacks of an attach (a TTY view or plain log lines). */
export interface AttachProgress {
  /** A table copy moved on (`done` once it committed). */
  table(replica: string, table: string, rows: number, done: boolean): void;
  /** A step ("creating the replication slot", …). */
  step: StepReporter;
  /** Something that went wrong without failing the attach (shown as a step when absent). */
  warn?: StepReporter;
  /** The copies about to run, with each table's size on the primary (for rates and ETAs). */
  plan?(
    copies: ReadonlyArray<{ replica: string; table: string; bytes: number; rows: number }>,
  ): void;
}
