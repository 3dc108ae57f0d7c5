import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AgentProbe, whileAgentAnswers } from '../../adapters/nats/agent-liveness.js';
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
  const never = new Promise<void>(() => undefined);
  const errors = {
    silent: (ms: number) => new Error(`silent ${ms}`),
    lost: () => new Error('lost'),
  };
  /** A probe answering `answers` in turn, then the last one for ever. */
  const probes = (...answers: AgentProbe[]) => {
    let next = 0;
    return async () => answers[Math.min(next++, answers.length - 1)] as AgentProbe;
  };

  it('fails once the agent answers no probe for the limit', async () => {
    await expect(whileAgentAnswers(never, probes('silent'), 100, errors)).rejects.toThrow(
      /^silent \d+$/,
    );
  });

  it('keeps waiting for an agent that answers, past the limit, for the answer', async () => {
    let probed = 0;
    let answer: () => void = () => undefined;
    const work = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const answered = whileAgentAnswers(
      work,
      async () => {
        // Answered probes for well past several limits, then the request's own answer.
        if (++probed === 12) answer();
        return 'preparing';
      },
      100,
      errors,
    );
    await expect(answered).resolves.toBeUndefined();
    expect(probed).toBeGreaterThanOrEqual(12);
  });

  it("passes the request's own failure through", async () => {
    await expect(
      whileAgentAnswers(Promise.reject(new Error('refused')), probes('preparing'), 100, errors),
    ).rejects.toThrow('refused');
  });

  it('is done once the agent says it prepared, though its answer never comes', async () => {
    await expect(
      whileAgentAnswers(never, probes('preparing', 'prepared'), 100, errors),
    ).resolves.toBeUndefined();
  });

  it('fails as lost once the agent says twice in a row it has no such migration, not once', async () => {
    const once = probes('none', 'preparing', 'none', 'preparing', 'prepared');
    await expect(whileAgentAnswers(never, once, 100, errors)).resolves.toBeUndefined();
    await expect(
      whileAgentAnswers(never, probes('preparing', 'none', 'none'), 100, errors),
    ).rejects.toThrow('lost');
  });
});
