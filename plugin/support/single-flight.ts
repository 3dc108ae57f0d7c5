/**
 * `work`, shared by every caller that arrives while it runs: they all get
 * that run's result. The first call after it settled starts a new run, so
 * nothing older than the run in flight is ever returned (no cache).
 */
export function singleFlight<T>(work: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= work().finally(() => {
      running = null;
    });
    return running;
  };
}
