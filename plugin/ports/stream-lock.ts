/**
 * A stream's coordinator lock as services hold it: taken without waiting,
 * released on demand. The Postgres `StreamLock` satisfies it.
 */
export interface StreamLockPort {
  /** Whether this process holds it now. */
  readonly held: boolean;
  /** The activation epoch this holder raised (null before, or when not attached). */
  readonly epoch: number | null;
  /** Takes the lock if it is free; false when another process holds it. */
  tryAcquire(): Promise<boolean>;
  /**
   * Migrate lock, held: whether a migration's primary transaction is still in
   * flight (its lock was lost, yet it runs its last steps, or is prepared).
   */
  migrationInFlight(): Promise<boolean>;
  release(): Promise<void>;
}
