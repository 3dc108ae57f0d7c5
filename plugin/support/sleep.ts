/** Resolves after `ms` milliseconds (the timer keeps the process alive, as a pending backoff should). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
