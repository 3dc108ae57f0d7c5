import { describe, expect, it, vi } from 'vitest';
import { whileAgentProgresses } from '../../adapters/nats/prepare-progress.js';
import { useFakeTimers } from '../support/fake-timers.js';

const LIMIT_MS = 4_000;

/** A prepare outstanding at the agent: it answers when told. */
function outstanding() {
  let answer: (vote: string) => void = () => undefined;
  const asked = new Promise<string>((resolve) => {
    answer = resolve;
  });
  return { asked, answer };
}

describe("a bus prepare waited for while the agent's replica answers its apply", () => {
  useFakeTimers();

  it('waits ten limits long for a vote the agent keeps progressing towards', async () => {
    const { asked, answer } = outstanding();
    let progress = 0;
    const heard: number[] = [];
    const vote = whileAgentProgresses(
      asked,
      async () => progress,
      LIMIT_MS,
      (p) => heard.push(p),
    );
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(LIMIT_MS / 2);
      progress += 10;
    }
    answer('yes');
    await expect(vote).resolves.toBe('yes');
    // What the agent reported reached the round (its driver extends its own deadline on it).
    expect(heard.at(-1)).toBe(progress - 10);
  });

  it('does not take the agent taking the prepare (-1, then its count) for progress', async () => {
    const { asked } = outstanding();
    let progress = -1;
    const vote = whileAgentProgresses(
      asked,
      async () => progress,
      LIMIT_MS,
      () => undefined,
    );
    let gaveUp = false;
    vote.catch(() => {
      gaveUp = true;
    });
    await vi.advanceTimersByTimeAsync(LIMIT_MS / 2);
    // Taken, then frozen: one count, never another.
    progress = 40;
    // A limit and a probe after the request: given up, not waited another limit for.
    await vi.advanceTimersByTimeAsync(LIMIT_MS * 0.75);
    expect(gaveUp).toBe(true);
    await expect(vote).rejects.toThrow(/no vote within/);
  });

  it('does not take a count that falls and climbs back for progress', async () => {
    const { asked } = outstanding();
    const counts = [5, -1, 3, 5, -1, 4, 5, 0, 5];
    let probes = 0;
    const vote = whileAgentProgresses(
      asked,
      async () => counts[Math.min(probes++, counts.length - 1)],
      LIMIT_MS,
      () => undefined,
    );
    const failed = expect(vote).rejects.toThrow(/no progress reported/);
    await vi.advanceTimersByTimeAsync(LIMIT_MS * 2);
    await failed;
  });

  it('gives up on an agent that answers probes without progress, after the limit', async () => {
    const { asked } = outstanding();
    const vote = whileAgentProgresses(
      asked,
      async () => 7,
      LIMIT_MS,
      () => undefined,
    );
    const failed = expect(vote).rejects.toThrow(/no progress reported/);
    await vi.advanceTimersByTimeAsync(LIMIT_MS * 2);
    await failed;
  });

  it('gives up on an agent that answers no probe, after the limit', async () => {
    const { asked } = outstanding();
    const vote = whileAgentProgresses(
      asked,
      async () => undefined,
      LIMIT_MS,
      () => undefined,
    );
    const failed = expect(vote).rejects.toThrow(/no vote within 4000 ms/);
    await vi.advanceTimersByTimeAsync(LIMIT_MS * 2);
    await failed;
  });
});
