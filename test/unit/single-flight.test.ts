import { describe, expect, it } from 'vitest';
import { singleFlight } from '../../plugin/support/single-flight.js';

/** A run that settles when told to, counting how many were started. */
function runs() {
  const started: Array<{ key: string; settle: (error?: Error) => void }> = [];
  const work = (key: string) =>
    new Promise<string>((resolve, reject) => {
      started.push({ key, settle: (error) => (error ? reject(error) : resolve(key)) });
    });
  return { started, work };
}

describe('singleFlight', () => {
  it('shares a rejected run with every caller in flight; the next call starts anew', async () => {
    const { started, work } = runs();
    const shared = singleFlight(work, () => 'a');
    const [first, second] = [shared(), shared()];
    started[0]?.settle(new Error('no answer'));
    await expect(first).rejects.toThrow('no answer');
    await expect(second).rejects.toThrow('no answer');
    const third = shared();
    expect(started).toHaveLength(2);
    started[1]?.settle();
    await expect(third).resolves.toBe('a');
  });

  it('a caller after the key changed gets a run of its own, and keeps it once the older one ends', async () => {
    const { started, work } = runs();
    let key = 'old';
    const shared = singleFlight(work, () => key);
    const before = shared();
    key = 'new';
    const after = shared();
    started[0]?.settle();
    await expect(before).resolves.toBe('old');
    // The older run ending does not drop the newer one: this caller shares it.
    const alongside = shared();
    expect(started.map((s) => s.key)).toEqual(['old', 'new']);
    started[1]?.settle();
    await expect(after).resolves.toBe('new');
    await expect(alongside).resolves.toBe('new');
  });
});
