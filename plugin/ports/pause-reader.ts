/** Since when the stream's replication is paused (`lockstep pause`), read on the primary; null when it runs. */
export type PauseReader = () => Promise<Date | null>;
