/**
 * `work` for a key (what it reads with), shared by every caller that arrives
 * while it runs with the same key: they all get that run's result. The first
 * call after it settled, or one whose key changed meanwhile (a configuration
 * reloaded mid-read), starts a new run, so nothing older than the run in
 * flight, nor read with another key, is ever returned (no cache).
 */
export function singleFlight<K, T>(work: (key: K) => Promise<T>, keyOf: () => K): () => Promise<T> {
  let running: { key: K; result: Promise<T> } | null = null;
  return () => {
    const key = keyOf();
    if (running?.key === key) return running.result;
    const run = {
      key,
      result: work(key).finally(() => {
        // A run superseded by a newer key leaves the newer one in place.
        if (running === run) running = null;
      }),
    };
    running = run;
    return run.result;
  };
}
