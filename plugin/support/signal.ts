/**
 * A wake-up call for a loop that waits for something another part of the
 * process changes (a rewind asked for, the stream resumed, the lock lost).
 *
 * Semantics, the same as a single resolver slot the loop fills before it
 * waits:
 * - `notify()` wakes every waiter registered at that moment. A notify with no
 *   waiter is dropped, not kept for the next wait: what the loop waits for
 *   lives in its own state, which it checks right before `wait()` in the same
 *   synchronous step (a kept wake would wake it later for nothing).
 * - `wait()` registers its waiter synchronously, when called: a notify any
 *   time after that call, even before the caller awaits, wakes it.
 * - A waiter is removed when it is woken, when its timeout fires, and (with
 *   `race`) when the work it raced settles first: nothing accumulates in a
 *   loop that waits again and again.
 */
export class Signal {
  private readonly waiters = new Set<() => void>();

  /** Wakes every waiter now. */
  notify(): void {
    const woken = [...this.waiters];
    this.waiters.clear();
    for (const wake of woken) wake();
  }

  /** Resolves at the next notify, or once `timeoutMs` passed (when given). */
  wait(timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wake = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      this.waiters.add(wake);
      if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs);
    });
  }

  /** What `work` resolves to, or `woken` should a notify come first; the waiter is gone either way. */
  async race<T, W>(work: Promise<T>, woken: W): Promise<T | W> {
    let wake: (() => void) | undefined;
    const notified = new Promise<W>((resolve) => {
      wake = () => resolve(woken);
      this.waiters.add(wake);
    });
    try {
      return await Promise.race([work, notified]);
    } finally {
      this.waiters.delete(wake as () => void);
    }
  }

  /** Waiters registered now (for tests: none may be left behind). */
  get waiting(): number {
    return this.waiters.size;
  }
}
