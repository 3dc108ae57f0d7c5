import { describe, expect, it } from 'vitest';
import { Signal } from '../../plugin/support/signal.js';
import { sleep } from '../../plugin/support/sleep.js';

/** Whether `promise` has settled once pending microtasks and timers of `ms` ran. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(() => {
    settled = true;
  });
  await sleep(ms);
  return settled;
}

describe('Signal', () => {
  it('wakes every waiter registered when notified, and forgets them', async () => {
    const signal = new Signal();
    const first = signal.wait();
    const second = signal.wait();
    expect(signal.waiting).toBe(2);
    signal.notify();
    await Promise.all([first, second]);
    expect(signal.waiting).toBe(0);
  });

  it('drops a notify that came before the wait (the caller checks its own state first)', async () => {
    const signal = new Signal();
    signal.notify();
    const late = signal.wait();
    expect(await settledWithin(late, 20)).toBe(false);
    signal.notify();
    await late;
  });

  it('registers the waiter when wait() is called: a notify before the await still wakes it', async () => {
    const signal = new Signal();
    const waiting = signal.wait();
    signal.notify();
    expect(await settledWithin(waiting, 0)).toBe(true);
  });

  it('resolves a wait with a timeout when nothing notifies, and removes its waiter', async () => {
    const signal = new Signal();
    await signal.wait(5);
    expect(signal.waiting).toBe(0);
  });

  it('removes a notified waiter with a timeout (its timer is cleared)', async () => {
    const signal = new Signal();
    const waiting = signal.wait(60_000);
    signal.notify();
    await waiting;
    expect(signal.waiting).toBe(0);
  });

  it('race: the work wins and leaves no waiter behind, however often it runs', async () => {
    const signal = new Signal();
    for (let i = 0; i < 1_000; i++) expect(await signal.race(Promise.resolve(i), null)).toBe(i);
    expect(signal.waiting).toBe(0);
  });

  it('race: a notify wins over work still pending', async () => {
    const signal = new Signal();
    const never = new Promise<number>(() => undefined);
    const raced = signal.race(never, 'woken' as const);
    signal.notify();
    expect(await raced).toBe('woken');
    expect(signal.waiting).toBe(0);
  });

  it('race: a failing work rejects and leaves no waiter behind', async () => {
    const signal = new Signal();
    await expect(signal.race(Promise.reject(new Error('cut')), null)).rejects.toThrow('cut');
    expect(signal.waiting).toBe(0);
  });
});

describe('sleep', () => {
  it('resolves the shorter sleep first', async () => {
    const order: number[] = [];
    await Promise.all([sleep(30).then(() => order.push(30)), sleep(1).then(() => order.push(1))]);
    expect(order).toEqual([1, 30]);
  });
});
