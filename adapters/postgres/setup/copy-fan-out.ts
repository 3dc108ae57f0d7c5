import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

/** One writer fed by a fan-out; `failure` is set when it fails (the others go on). */
export interface FanOutTarget {
  readonly stream: Writable;
  failure: unknown;
  /** Called once when the target stalled: drop what it writes to (its socket). */
  readonly abort?: () => void;
}

/** A target that took nothing for the fan-out's stall time. */
export class FanOutStalled extends Error {
  constructor(readonly stallMs: number) {
    super(`took no data for ${stallMs} ms`);
  }
}

/**
 * Feeds every chunk of `source` to each target that has not failed, one
 * chunk at a time: the next is read only once every target took the last, so
 * the slowest writer sets the pace and memory stays at a chunk per target.
 * A target that fails drops out with its error kept; the read stops once
 * none is left. Ends every surviving target and waits until each finished
 * (its COPY's command completed). Throws when the source fails. A target
 * that takes no data, or does not finish, within `stallMs` fails with
 * {@link FanOutStalled} and is aborted: a frozen writer must not hold the
 * others back for ever.
 */
export async function fanOut(
  source: Readable,
  targets: readonly FanOutTarget[],
  onChunk: (chunk: Buffer) => void,
  stallMs: number,
): Promise<void> {
  for (const target of targets)
    target.stream.on('error', (error) => {
      target.failure ??= error;
    });
  const live = () => targets.filter((t) => t.failure === undefined);
  for await (const chunk of source) {
    const writing = live();
    if (writing.length === 0) {
      source.destroy();
      return;
    }
    const waits = writing
      .filter((t) => !t.stream.write(chunk))
      .map((t) => within(t, drained(t), stallMs));
    if (waits.length > 0) await Promise.all(waits);
    onChunk(chunk as Buffer);
  }
  await Promise.all(
    live().map(async (target) => {
      target.stream.end();
      const done = finished(target.stream).catch((error: unknown) => {
        target.failure ??= error;
      });
      await within(target, done, stallMs);
    }),
  );
}

/** Resolves once the target can take more, or has failed or closed. */
function drained(target: FanOutTarget): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      target.stream.off('drain', done);
      target.stream.off('error', done);
      target.stream.off('close', done);
      resolve();
    };
    target.stream.on('drain', done);
    target.stream.on('error', done);
    target.stream.on('close', done);
  });
}

/** Waits for `wait`; after `stallMs` without it, fails the target as stalled and aborts it. */
async function within(target: FanOutTarget, wait: Promise<void>, stallMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      if (target.failure === undefined) {
        target.failure = new FanOutStalled(stallMs);
        target.abort?.();
      }
      resolve();
    }, stallMs);
  });
  try {
    await Promise.race([wait, stalled]);
  } finally {
    clearTimeout(timer);
  }
}
