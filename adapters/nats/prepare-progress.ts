import { watchedRequest } from './watched-request.js';

/** Fewest ms between two looks at a preparing agent's progress. */
const MIN_PROBE_MS = 250;

/**
 * `asked` (a prepare outstanding at an agent), given up on once the agent
 * reported no progress for `limitMs`: an agent that answers no probe (frozen,
 * gone), or one too old to report progress, fails after `limitMs` as any
 * request would; one whose replica keeps answering the round's apply is
 * waited for, however long the apply takes. `probe` asks the agent for its
 * progress (undefined: no answer); `heard` receives each value it reports.
 * Probes stop once `asked` settles.
 */
export function whileAgentProgresses<T>(
  asked: Promise<T>,
  probe: (timeoutMs: number) => Promise<number | undefined>,
  limitMs: number,
  heard: (progress: number) => void,
  everyMs = limitMs / 4,
): Promise<T> {
  const request = watchedRequest(asked);
  const { done, settledOrAfter } = request;
  const interval = Math.max(MIN_PROBE_MS, Math.floor(everyMs));
  const watch = async (): Promise<T> => {
    /** The highest count reported (-1, parked behind other work, is no count). */
    let highest: number | undefined;
    let lastAt = Date.now();
    for (;;) {
      await settledOrAfter(interval);
      if (request.settled) return done;
      const progress = await probe(interval);
      if (progress !== undefined) {
        // The first count is where the agent stands, not progress since the request (-1 is no
        // count). Only a count above every one before is progress: one that fell (a packet
        // rolled back and applied again) must climb past where it was.
        if (progress !== -1 && (highest === undefined || progress > highest)) {
          if (highest !== undefined) lastAt = Date.now();
          highest = progress;
        }
        heard(progress);
      }
      if (request.settled) return done;
      if (Date.now() - lastAt >= limitMs)
        throw new Error(`no vote within ${limitMs} ms, and no progress reported meanwhile`);
    }
  };
  return Promise.race([done, watch()]);
}
