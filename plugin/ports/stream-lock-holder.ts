/** What a stream lock guards: stream rounds (the active sidecar, or recover), or migrations. */
export type StreamLockPurpose = 'coordinator' | 'migrate';

/**
 * One process's hold on a stream's lock on the primary. Only its holder
 * decides (coordinator) or migrates (migrate), and recovers those gids.
 */
export interface StreamLockHolder {
  /** Takes the lock if it is free; false when another process holds it. */
  tryAcquire(): Promise<boolean>;
  /** Whether this process still holds the lock. */
  readonly held: boolean;
  /** The activation epoch taking the coordinator lock raised; null otherwise. */
  readonly epoch: number | null;
  /** Calls `listener` once the lock is lost while held (its session ended). */
  onLost(listener: () => void): void;
  /** Releases the lock (if held). */
  release(): Promise<void>;
}
