import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type FanOutTarget, fanOut } from '../../adapters/postgres/setup/copy-fan-out.js';

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

const chunks = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`row ${i}\n`));

describe('fanOut', () => {
  it('gives every writer every chunk in order, read no faster than the slowest takes them', async () => {
    const fast = sink();
    const slow = sink({ delayMs: 2, highWaterMark: 1 });
    let read = 0;
    let readAheadOfSlow = 0;
    const source = Readable.from(chunks(40));
    await fanOut(source, [fast.target, slow.target], () => {
      read++;
      readAheadOfSlow = Math.max(readAheadOfSlow, read - slow.got.length);
    });
    const all = chunks(40).map(String);
    expect(fast.got).toEqual(all);
    expect(slow.got).toEqual(all);
    // Backpressure: never more than a chunk or two ahead of the slow writer.
    expect(readAheadOfSlow).toBeLessThanOrEqual(2);
  });

  it('drops a failing writer with its error and feeds the others to the end', async () => {
    const healthy = sink();
    const broken = sink({ failAt: 5 });
    await fanOut(Readable.from(chunks(30)), [healthy.target, broken.target], () => undefined);
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
    await expect(fanOut(source, [target.target], () => undefined)).rejects.toThrow(
      /primary went away/,
    );
  });
});
