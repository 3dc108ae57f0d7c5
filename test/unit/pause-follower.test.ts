import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PauseFollower } from '../../plugin/sidecar/pause-follower.js';

/** A follower over a flag the test sets, and the changes it called back with. */
function follower() {
  const flag: { since: Date | null; fails: boolean } = { since: null, fails: false };
  const changes: Array<Date | null> = [];
  let notify: () => void = () => undefined;
  const pause = new PauseFollower({
    read: async () => {
      if (flag.fails) throw new Error('primary unreachable');
      return flag.since;
    },
    signal: {
      listen: async (changed) => {
        notify = changed;
      },
      close: async () => undefined,
    },
    log: pino({ level: 'silent' }),
    changed: (since) => changes.push(since),
  });
  return { flag, changes, pause, notify: () => notify() };
}

describe('PauseFollower', () => {
  it('calls back once per change of the flag, and keeps what it knew when the flag cannot be read', async () => {
    const { flag, changes, pause } = follower();
    await pause.follow();
    expect(changes).toEqual([]);
    const since = new Date('2026-01-01T00:00:00Z');
    flag.since = since;
    await pause.follow();
    await pause.follow();
    expect(changes).toEqual([since]);
    expect(pause.since).toBe(since);
    flag.fails = true;
    flag.since = null;
    await pause.follow();
    expect(pause.since).toBe(since);
    flag.fails = false;
    await pause.follow();
    expect(changes).toEqual([since, null]);
    expect(pause.since).toBeNull();
  });

  it('reads the flag once it listens and at each notification', async () => {
    const { flag, changes, pause, notify } = follower();
    flag.since = new Date();
    pause.listen();
    await expect.poll(() => changes.length).toBe(1);
    flag.since = null;
    notify();
    await expect.poll(() => changes.length).toBe(2);
    expect(pause.since).toBeNull();
  });
});
