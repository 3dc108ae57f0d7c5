import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { SequenceValuesBus } from '../../plugin/ports/sequence-values-bus.js';
import {
  decodeSequenceValues,
  encodeSequenceValues,
  type SequenceValue,
} from '../../plugin/protocol/sequence-values.js';
import {
  applySequences,
  publishSequences,
  REPEAT_EVERY,
  RepeatGate,
} from '../../plugin/sidecar/sequence-relay.js';
import { Signal } from '../../plugin/support/signal.js';

const values: SequenceValue[] = [
  { schema: 'public', name: 'odd "name"', lastValue: '9223372036854775807' },
  { schema: 'x', name: 't_id_seq', lastValue: '-5' },
];

/** A bus whose calls fail the first `failures` times; `calls` wakes on each call. */
function flakyBus(failures: number) {
  const calls = new Signal();
  let kept: readonly SequenceValue[] | null = null;
  let count = 0;
  const bus: SequenceValuesBus = {
    put: async (v) => {
      calls.notify();
      if (++count <= failures) throw new Error('bus down');
      kept = v;
    },
    get: async () => {
      calls.notify();
      if (++count <= failures) throw new Error('bus down');
      return kept ? [...kept] : null;
    },
  };
  return { bus, calls, kept: () => kept, count: () => count };
}

describe('sequence values over the bus', () => {
  it('encode and decode, refusing documents that are not values', () => {
    expect(decodeSequenceValues(encodeSequenceValues(values))).toEqual(values);
    const bytes = (text: string) => new TextEncoder().encode(text);
    expect(decodeSequenceValues(bytes('not json'))).toBeNull();
    expect(
      decodeSequenceValues(bytes('{"values":[{"schema":"s","name":"n","lastValue":"1; DROP"}]}')),
    ).toBeNull();
    expect(
      decodeSequenceValues(bytes('{"values":[{"schema":1,"name":"n","lastValue":"1"}]}')),
    ).toBeNull();
  });

  it('are published again after the bus failed, and only while the publisher is active', async () => {
    const { bus, kept, count } = flakyBus(2);
    let active = false;
    const relay = publishSequences(
      { bus, everyMs: 5, log: pino({ level: 'silent' }), node: 'primary' },
      async () => values,
      () => active,
    );
    try {
      const idle = new Signal();
      await idle.wait(30);
      expect(count()).toBe(0);
      active = true;
      while (!kept()) await idle.wait(5);
      expect(kept()).toEqual(values);
      expect(count()).toBeGreaterThanOrEqual(3);
    } finally {
      await relay.stop();
    }
  });

  it('move the replica after the bus failed, nothing when none were written', async () => {
    const { bus } = flakyBus(1);
    const advanced: (readonly SequenceValue[])[] = [];
    const relay = applySequences(
      { bus, everyMs: 5, log: pino({ level: 'silent' }), node: 'replica1' },
      async (v) => {
        advanced.push(v);
        return v.length;
      },
      () => 0,
    );
    try {
      const tick = new Signal();
      await bus.put(values).catch(() => undefined);
      await bus.put(values);
      while (advanced.length === 0) await tick.wait(5);
      expect(advanced[0]).toEqual(values);
    } finally {
      await relay.stop();
    }
  });

  it('are passed on again unchanged only every REPEAT_EVERY periods, changed ones at once', () => {
    const gate = new RepeatGate();
    const passed: number[] = [];
    const period = (n: number, key: string) => {
      if (!gate.due(key)) return;
      gate.done(key);
      passed.push(n);
    };
    for (let n = 1; n <= 2 * REPEAT_EVERY + 1; n++) period(n, 'a');
    expect(passed).toEqual([1, 1 + REPEAT_EVERY, 1 + 2 * REPEAT_EVERY]);
    period(100, 'b');
    period(101, 'a');
    expect(passed.slice(-2)).toEqual([100, 101]);
    // Not passed on (the replica or the bus failed): due again next period.
    const failing = new RepeatGate();
    expect(failing.due('a')).toBe(true);
    expect(failing.due('a')).toBe(true);
  });

  it('skip the replica while the values on the bus do not change', async () => {
    const { bus, count } = flakyBus(0);
    await bus.put(values);
    const advanced: (readonly SequenceValue[])[] = [];
    const relay = applySequences(
      { bus, everyMs: 1, log: pino({ level: 'silent' }), node: 'replica1' },
      async (v) => {
        advanced.push(v);
        return 0;
      },
      () => 7,
    );
    const tick = new Signal();
    while (count() < 4) await tick.wait(5);
    await relay.stop();
    // Read after the stop: every period that read the bus has finished.
    const reads = count() - 1;
    expect(advanced.length).toBe(1 + Math.floor((reads - 1) / REPEAT_EVERY));
  });

  it('move the replica again, unchanged, once it applied packets since the last copy', async () => {
    // A replicated TRUNCATE … RESTART IDENTITY sets the replica's sequence back while the
    // primary's value can end where it was: the agent's position is part of what is compared.
    const { bus } = flakyBus(0);
    await bus.put(values);
    const advanced: (readonly SequenceValue[])[] = [];
    let positions = 0;
    const relay = applySequences(
      { bus, everyMs: 1, log: pino({ level: 'silent' }), node: 'replica1' },
      async (v) => {
        advanced.push(v);
        return 0;
      },
      // The replica moves on every second period.
      () => Math.floor(positions++ / 2),
    );
    const tick = new Signal();
    while (positions < 4 * REPEAT_EVERY) await tick.wait(5);
    await relay.stop();
    // Read after the stop: one copy for each position the relay saw.
    expect(advanced.length).toBe(Math.floor((positions - 1) / 2) + 1);
  });

  it('move the replica again when a packet was applied while the last copy ran', async () => {
    // The position is read before the copy: one that moves during it makes the next period due.
    const { bus, count } = flakyBus(0);
    await bus.put(values);
    let version = 1;
    let advanced = 0;
    const relay = applySequences(
      { bus, everyMs: 1, log: pino({ level: 'silent' }), node: 'replica1' },
      async () => {
        if (++advanced === 1) version = 2;
        return 0;
      },
      () => version,
    );
    const tick = new Signal();
    while (count() < 5) await tick.wait(5);
    await relay.stop();
    const reads = count() - 1;
    expect(advanced).toBe(2 + Math.floor((reads - 2) / REPEAT_EVERY));
  });

  it('are written again by a publisher that was not active, unchanged or not', async () => {
    const { bus, count } = flakyBus(0);
    // Periods 1-3 active, 4-6 not (another publisher held the lock and may have written
    // other values), 7-9 active again, then not: what was written is known whatever the pace.
    let periods = 0;
    const relay = publishSequences(
      { bus, everyMs: 1, log: pino({ level: 'silent' }), node: 'primary' },
      async () => values,
      () => {
        periods++;
        return periods <= 3 || (periods >= 7 && periods <= 9);
      },
    );
    const tick = new Signal();
    while (periods < 10) await tick.wait(5);
    await relay.stop();
    expect(count()).toBe(2);
  });

  it('are written to the bus again unchanged only every REPEAT_EVERY periods', async () => {
    const { bus, count } = flakyBus(0);
    let reads = 0;
    const relay = publishSequences(
      { bus, everyMs: 1, log: pino({ level: 'silent' }), node: 'primary' },
      async () => {
        reads++;
        return values;
      },
      () => true,
    );
    const tick = new Signal();
    while (reads < 2 * REPEAT_EVERY) await tick.wait(5);
    await relay.stop();
    // Read after the stop: every period that read the primary has finished.
    expect(count()).toBe(1 + Math.floor((reads - 1) / REPEAT_EVERY));
  });
});
