import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  FanOutStalled,
  type FanOutTarget,
  fanOut,
} from '../../adapters/postgres/setup/copy-fan-out.js';

/** A writer that keeps what it gets, taking `delayMs` per chunk, failing at chunk `failAt`. */
function sink(options: { delayMs?: number; failAt?: number; highWaterMark?: number } = {}) {
  const got: string[] = [];
  const stream = new Writable({
    highWaterMark: options.highWaterMark ?? 16,
    write(chunk: Buffer, _encoding, done) {
      setTimeout(() => {
        if (got.length === options.failAt) return done(new Error('writer broke'));
        got.push(chunk.toString());
        done();
      }, options.delayMs ?? 0);
    },
  });
  const target: FanOutTarget = { stream, failure: undefined };
  return { target, got };
}

/** Long enough that no writer here stalls unless it never takes data. */
const STALL_MS = 10_000;

const chunks = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`row ${i}\n`));

describe('fanOut', () => {
  it('gives every writer every chunk in order, read no faster than the slowest takes them', async () => {
    const fast = sink();
    const slow = sink({ delayMs: 2, highWaterMark: 1 });
    let read = 0;
    let readAheadOfSlow = 0;
    const source = Readable.from(chunks(40));
    await fanOut(
      source,
      [fast.target, slow.target],
      () => {
        read++;
        readAheadOfSlow = Math.max(readAheadOfSlow, read - slow.got.length);
      },
      STALL_MS,
    );
    const all = chunks(40).map(String);
    expect(fast.got).toEqual(all);
    expect(slow.got).toEqual(all);
    // Backpressure: never more than a chunk or two ahead of the slow writer.
    expect(readAheadOfSlow).toBeLessThanOrEqual(2);
  });

  it('drops a failing writer with its error and feeds the others to the end', async () => {
    const healthy = sink();
    const broken = sink({ failAt: 5 });
    await fanOut(
      Readable.from(chunks(30)),
      [healthy.target, broken.target],
      () => undefined,
      STALL_MS,
    );
    expect(healthy.got).toEqual(chunks(30).map(String));
    expect(healthy.target.failure).toBeUndefined();
    expect(String(broken.target.failure)).toMatch(/writer broke/);
    expect(broken.got.length).toBe(5);
  });

  it('throws when the source fails', async () => {
    const target = sink();
    const source = new Readable({
      read() {
        this.destroy(new Error('primary went away'));
      },
    });
    await expect(fanOut(source, [target.target], () => undefined, STALL_MS)).rejects.toThrow(
      /primary went away/,
    );
  });

  it('drops a writer that takes nothing (a frozen replica) after the stall time, the others go on', async () => {
    const healthy = sink();
    let aborted = 0;
    // Never calls back: as a COPY to a frozen server whose socket buffers are full.
    const frozen = new Writable({ highWaterMark: 1, write: () => undefined });
    const stuck: FanOutTarget = { stream: frozen, failure: undefined, abort: () => aborted++ };
    await fanOut(Readable.from(chunks(30)), [healthy.target, stuck], () => undefined, 50);
    expect(healthy.got).toEqual(chunks(30).map(String));
    expect(healthy.target.failure).toBeUndefined();
    expect(stuck.failure).toBeInstanceOf(FanOutStalled);
    expect(aborted).toBe(1);
  });

  it('drops a writer that takes the data but never finishes', async () => {
    const healthy = sink();
    let aborted = 0;
    // Takes every chunk, but its final callback (the COPY's completion) never comes.
    const unfinished = new Writable({ write: (_c, _e, done) => done(), final: () => undefined });
    const stuck: FanOutTarget = { stream: unfinished, failure: undefined, abort: () => aborted++ };
    await fanOut(Readable.from(chunks(5)), [healthy.target, stuck], () => undefined, 50);
    expect(healthy.got).toEqual(chunks(5).map(String));
    expect(stuck.failure).toBeInstanceOf(FanOutStalled);
    expect(aborted).toBe(1);
  });
});
