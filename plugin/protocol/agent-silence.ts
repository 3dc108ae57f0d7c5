/** Where a migration stands at its agent: in hand, prepared (until its phase two), or neither. */
export type MigrationAtAgent = 'preparing' | 'prepared' | 'none';

/**
 * Whether an agent with a request outstanding still shows life (DESIGN.md,
 * "Nothing waits without bound"). A `migrate` may legitimately take minutes
 * (the agent catches its replica up first), so its answer gets a long cap;
 * an agent that stops answering probes is given up on much sooner. A probe
 * answered counts as life at the time it was *sent*: the answer proves the
 * agent ran after that, never when exactly.
 */
export class AgentSilence {
  private lastLife: number;

  /** `limitMs`: how long the agent may show no life; `start`: when the request went out. */
  constructor(
    readonly limitMs: number,
    start: number,
  ) {
    this.lastLife = start;
  }

  /** A probe sent at `sentAt` was answered. */
  heard(sentAt: number): void {
    this.lastLife = Math.max(this.lastLife, sentAt);
  }

  /** How long, at `now`, the agent has shown no life (ms). */
  silentMs(now: number): number {
    return Math.max(0, now - this.lastLife);
  }

  /** At `now`, the agent has shown no life for the whole limit. */
  overdue(now: number): boolean {
    return this.silentMs(now) >= this.limitMs;
  }
}

/**
 * How often to probe an agent that may stay silent for `limitMs`: a few
 * probes within the limit, so one lost probe never decides, and at most
 * one every 2 s.
 */
export function probeIntervalMs(limitMs: number): number {
  return Math.max(50, Math.min(2_000, Math.floor(limitMs / 4)));
}
