import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { whileAgentAnswers } from '../../adapters/nats/agent-liveness.js';
import { AgentSilence, probeIntervalMs } from '../../plugin/protocol/agent-silence.js';

describe('an agent silent while a request is outstanding', () => {
  it('is overdue exactly when no probe sent within the limit was answered', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.array(fc.integer({ min: 0, max: 50_000 })),
        fc.integer({ min: 0, max: 60_000 }),
        (limit, start, answeredAfter, nowAfter) => {
          const silence = new AgentSilence(limit, start);
          for (const at of answeredAfter) silence.heard(start + at);
          const now = start + nowAfter;
          // Life is the request itself, then each answered probe (an answer from the future counts as now).
          const lastLife = Math.max(start, ...answeredAfter.map((at) => start + at));
          expect(silence.overdue(now)).toBe(now - lastLife >= limit);
          expect(silence.silentMs(now)).toBe(Math.max(0, now - lastLife));
        },
      ),
    );
  });

  it('probes a few times within the limit, at most every 2 s', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), (limit) => {
        const every = probeIntervalMs(limit);
        expect(every).toBeGreaterThan(0);
        expect(every).toBeLessThanOrEqual(2_000);
        if (limit >= 200) expect(every * 4).toBeLessThanOrEqual(limit);
      }),
    );
  });
});

describe('a request watched while it is outstanding', () => {
  const never = new Promise<string>(() => undefined);
  const silent = (ms: number) => new Error(`silent ${ms}`);

  it('fails once the agent answers no probe for the limit', async () => {
    await expect(whileAgentAnswers(never, async () => false, 100, silent)).rejects.toThrow(
      /^silent \d+$/,
    );
  });

  it('keeps waiting for an agent that answers, past the limit, for the answer', async () => {
    let probes = 0;
    let answer: (value: string) => void = () => undefined;
    const work = new Promise<string>((resolve) => {
      answer = resolve;
    });
    const answered = whileAgentAnswers(
      work,
      async () => {
        // Answered probes for well past several limits, then the request's own answer.
        if (++probes === 12) answer('prepared');
        return true;
      },
      100,
      silent,
    );
    expect(await answered).toBe('prepared');
    expect(probes).toBeGreaterThanOrEqual(12);
  });

  it("passes the request's own failure through", async () => {
    await expect(
      whileAgentAnswers(Promise.reject(new Error('refused')), async () => true, 100, silent),
    ).rejects.toThrow('refused');
  });
});
