import type { LockstepStatus } from '../status/read-status.js';
import { type WatchSample, watchFrame } from './watch-view.js';

/** Options of `status --watch`. */
export interface WatchOptions {
  /** Time between refreshes. */
  readonly intervalMs: number;
  /** Where the view goes (a TTY is redrawn in place). */
  readonly out: NodeJS.WriteStream;
  /** One JSON status per line instead of the view. */
  readonly json: boolean;
  /** Ends the watch (SIGINT). */
  readonly stop: AbortSignal;
}

/** Resolves after `ms`, or at once when `stop` fires. */
function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop.addEventListener('abort', done, { once: true });
  });
}

/**
 * `lockstep status --watch`: reads the status every interval and shows it
 * until `stop` fires; a read still in flight then is not waited for.
 */
export async function watchStatus(
  read: () => Promise<LockstepStatus>,
  options: WatchOptions,
): Promise<void> {
  const { out, stop } = options;
  const stopped = new Promise<null>((resolve) =>
    stop.addEventListener('abort', () => resolve(null), { once: true }),
  );
  const tty = out.isTTY === true && !options.json;
  let previous: WatchSample | null = null;
  while (!stop.aborted) {
    let status: LockstepStatus | null;
    try {
      status = await Promise.race([read(), stopped]);
    } catch (error) {
      // A failed refresh is shown and the next one tried: the watch outlives a node's restart.
      out.write(`${new Date().toISOString()} cannot read status: ${(error as Error).message}\n`);
      await pause(options.intervalMs, stop);
      continue;
    }
    if (status === null) break;
    const sample: WatchSample = { status, at: new Date() };
    out.write(options.json ? `${JSON.stringify(status)}\n` : watchFrame(sample, previous, tty));
    previous = sample;
    await pause(options.intervalMs, stop);
  }
}
