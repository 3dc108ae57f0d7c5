/**
 * A request watched while it is outstanding: `settled` turns true once it
 * settles, and `settledOrAfter(ms)` resolves then or after `ms`, whichever is
 * first — the pause between two probes of the agent serving it.
 */
export function watchedRequest<T>(work: Promise<T>) {
  const watched = {
    settled: false,
    done: work.finally(() => {
      watched.settled = true;
    }),
    settledOrAfter: (ms: number) =>
      Promise.race([
        watched.done.then(
          () => undefined,
          () => undefined,
        ),
        new Promise<void>((resolve) => setTimeout(resolve, ms).unref()),
      ]),
  };
  return watched;
}
