import { describe, expect, it } from 'vitest';
import { PacketWindow } from '../../plugin/sidecar/packet-window.js';
import { SidecarState } from '../../plugin/sidecar/sidecar-state.js';

const LONG = 60_000;

/** 'ended' when `wait` settles before 200 ms, else 'waiting'. */
const settled = (wait: Promise<void>) =>
  Promise.race([
    wait.then(() => 'ended' as const),
    new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 200)),
  ]);

describe('SidecarState.backoff', () => {
  it('waits while the activation runs', async () => {
    const state = new SidecarState(new PacketWindow(10));
    const wait = state.backoff(LONG);
    expect(await settled(wait)).toBe('waiting');
    state.ended.notify();
    expect(await settled(wait)).toBe('ended');
  });

  it('ends at once when the activation stops, and does not wait once stopping', async () => {
    const state = new SidecarState(new PacketWindow(10));
    const wait = state.backoff(LONG);
    state.stopping = true;
    state.ended.notify();
    expect(await settled(wait)).toBe('ended');
    // A stop's wake is not kept: a backoff begun after it sees the flag instead.
    expect(await settled(state.backoff(LONG))).toBe('ended');
    expect(state.ended.waiting).toBe(0);
  });
});
