import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

/** One writer fed by a fan-out; `failure` is set when it fails (the others go on). */
export interface FanOutTarget {
  readonly stream: Writable;
  failure: unknown;
}

/**
 * Feeds every chunk of `source` to each target that has not failed, one
 * chunk at a time: the next is read only once every target took the last, so
 * the slowest writer sets the pace and memory stays at a chunk per target.
 * A target that fails drops out with its error kept; the read stops once
 * none is left. Ends every surviving target and waits until each finished
 * (its COPY's command completed). Throws when the source fails.
 */
export async function fanOut(
  source: Readable,
  targets: readonly FanOutTarget[],
  onChunk: (chunk: Buffer) => void,
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
    const waits = writing.filter((t) => !t.stream.write(chunk)).map(drained);
    if (waits.length > 0) await Promise.all(waits);
    onChunk(chunk as Buffer);
  }
  await Promise.all(
    live().map(async (target) => {
      target.stream.end();
      await finished(target.stream).catch((error: unknown) => {
        target.failure ??= error;
      });
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
