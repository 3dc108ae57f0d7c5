import { describe, expect, it, vi } from 'vitest';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import { guardStep, type StepOwner, withinDeadline } from '../../plugin/replica/apply-deadline.js';
import type { BusyAnswer, ReplicaTarget } from '../../plugin/replica/replica-target.js';
import { useFakeTimers } from '../support/fake-timers.js';

const TIMEOUT_MS = 2_000;

/** A target whose replica answered `answers` statements so far; `aborted` once the deadline dropped it. */
function target(withHeard = true) {
  const state = { answers: 0, aborted: false };
  const t = {
    node: 'r1',
    ignoredMissingRows: 0,
    abort: () => {
      state.aborted = true;
    },
    ...(withHeard ? { heard: () => state.answers } : {}),
  } as unknown as ReplicaTarget;
  return { t, state };
}

/** A target that can be asked whether its replica is busy: each probe answers `busy` after `probeMs`. */
function probedTarget(probeMs: number) {
  const { t, state } = target();
  const probes = { busy: true, asked: [] as number[] };
  const busy = (boundMs: number) => {
    probes.asked.push(boundMs);
    const answer: BusyAnswer = {
      busy: probes.busy,
      waitEvent: probes.busy ? 'IO:DataFileRead' : null,
    };
    return new Promise<BusyAnswer>((resolve) => setTimeout(resolve, probeMs, answer));
  };
  return { t: { ...t, busy } as ReplicaTarget, state, probes };
}

/** Work that settles only when told. */
function pending() {
  let resolve: () => void = () => undefined;
  const work = new Promise<void>((r) => {
    resolve = r;
  });
  return { work, resolve };
}

/** A step on a replica silent for half the deadline, while the probe (which will say "not busy") looks. */
async function probingNotBusy() {
  const { t, state, probes } = probedTarget(TIMEOUT_MS / 2);
  probes.busy = false;
  const { work, resolve } = pending();
  const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
  await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2 + TIMEOUT_MS / 8);
  expect(probes.asked).toHaveLength(1);
  return { state, step, resolve, probes };
}

describe('the apply deadline', () => {
  useFakeTimers();

  it('lets a step run ten deadlines long while the replica keeps answering', async () => {
    const { t, state } = target();
    const { work, resolve } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2);
      state.answers += 100;
    }
    resolve();
    await expect(step).resolves.toBeUndefined();
    expect(state.aborted).toBe(false);
  });

  it('drops a replica silent for the deadline, even after it answered for long', async () => {
    const { t, state } = target();
    const { work } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    const failed = expect(step).rejects.toSatisfy(
      (e) => e instanceof ApplyError && e.kind === 'unresponsive' && e.version === 7,
    );
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2);
      state.answers += 100;
    }
    expect(state.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS + TIMEOUT_MS / 4);
    await failed;
    expect(state.aborted).toBe(true);
  });

  it('bounds a step as a whole for a target that cannot tell its answers', async () => {
    const { t, state } = target(false);
    const { work } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    const failed = expect(step).rejects.toBeInstanceOf(ApplyError);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    await failed;
    expect(state.aborted).toBe(true);
  });

  it('lets a silent replica run ten deadlines long while its server is busy with the statement', async () => {
    const { t, state, probes } = probedTarget(TIMEOUT_MS / 10);
    const { work, resolve } = pending();
    const busy: Array<[number, string | null]> = [];
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7, (ms, wait) => busy.push([ms, wait]));
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 10);
    resolve();
    await expect(step).resolves.toBeUndefined();
    expect(state.aborted).toBe(false);
    // Each extension is told, with how long the replica has been busy since its last answer.
    expect(busy.length).toBe(probes.asked.length);
    expect(busy[0]?.[0]).toBeGreaterThanOrEqual(TIMEOUT_MS / 2);
    const spans = busy.map(([ms]) => ms);
    expect(spans).toEqual([...spans].sort((a, b) => a - b));
    expect(spans.at(-1)).toBeGreaterThanOrEqual(TIMEOUT_MS * 9);
    expect(new Set(busy.map(([, wait]) => wait))).toEqual(new Set(['IO:DataFileRead']));
    // Asked after half a deadline of silence, each probe bounded by the other half.
    expect(probes.asked.length).toBeGreaterThan(10);
    expect(new Set(probes.asked)).toEqual(new Set([TIMEOUT_MS / 2]));
  });

  it('drops the replica once its server is no longer busy with the statement', async () => {
    const { t, state, probes } = probedTarget(TIMEOUT_MS / 10);
    const { work } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    const failed = expect(step).rejects.toSatisfy(
      (e) => e instanceof ApplyError && e.kind === 'unresponsive' && e.version === 7,
    );
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 3);
    expect(state.aborted).toBe(false);
    probes.busy = false;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 1.5);
    await failed;
    expect(state.aborted).toBe(true);
  });

  it('drops a silent replica whose probe says it is not busy (a frozen host, a lock wait) at the deadline', async () => {
    // The probe takes all of its bound: a frozen host, whose probe does not answer either.
    const { state, step, probes } = await probingNotBusy();
    const failed = expect(step).rejects.toBeInstanceOf(ApplyError);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2 - TIMEOUT_MS / 8);
    await failed;
    expect(state.aborted).toBe(true);
    expect(probes.asked).toEqual([TIMEOUT_MS / 2]);
  });

  it('takes an answer that came while the probe looked for an answer, whatever the probe saw', async () => {
    const { state, step, resolve } = await probingNotBusy();
    state.answers++;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2);
    expect(state.aborted).toBe(false);
    resolve();
    await expect(step).resolves.toBeUndefined();
  });

  it('does not drop a step that settled while the probe looked', async () => {
    const { state, step, resolve } = await probingNotBusy();
    resolve();
    await expect(step).resolves.toBeUndefined();
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(state.aborted).toBe(false);
  });

  it('keeps a busy step, lets go of what it holds each time, and logs it once per deadline', async () => {
    const { t, probes } = probedTarget(TIMEOUT_MS / 10);
    const notes: Array<Record<string, unknown>> = [];
    let letGo = 0;
    const owner: StepOwner = {
      target: t,
      name: 'r1',
      applyTimeoutMs: TIMEOUT_MS,
      note: (_message, fields) => notes.push(fields),
      busy: () => letGo++,
    };
    const { work, resolve } = pending();
    const step = guardStep(owner, work, 7);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 10);
    resolve();
    await expect(step).resolves.toBeUndefined();
    expect(letGo).toBe(probes.asked.length);
    // Found busy about twice per deadline, logged at most once per deadline.
    expect(notes.length).toBeGreaterThan(3);
    expect(notes.length).toBeLessThanOrEqual(10);
    expect(notes.length).toBeLessThan(letGo);
    for (const note of notes)
      expect(note).toMatchObject({
        event: 'replica-busy',
        node: 'r1',
        version: 7,
        busyMs: expect.any(Number),
        waitEvent: 'IO:DataFileRead',
      });
  });
});
