import { describe, expect, it, vi } from 'vitest';
import { ZERO_LSN } from '../../plugin/protocol/index.js';
import { type ApplierHost, ReplicaApplier } from '../../plugin/replica/replica-applier.js';
import type { ReplicaParticipant } from '../../plugin/replica/replica-participant.js';
import type { ReplicaTarget } from '../../plugin/replica/replica-target.js';
import { PacketWindow } from '../../plugin/sidecar/packet-window.js';
import { useFakeTimers } from '../support/fake-timers.js';
import { makePackets } from './replica-apply-db.js';

const TIMEOUT_MS = 1_000;

/** A replica whose first statement runs until `finish()`, its server busy with it meanwhile. */
function busyTarget() {
  const calls: string[] = [];
  let answers = 0;
  let finish: () => void = () => undefined;
  const answered = () => {
    answers++;
    return Promise.resolve();
  };
  const target = {
    node: 'r1',
    heard: () => answers,
    busy: () => Promise.resolve({ busy: true, waitEvent: null }),
    abort: () => calls.push('abort'),
    begin: (from: number) => calls.push(`begin ${from}`),
    apply: (_changes: unknown, version: number) => {
      calls.push(`apply ${version}`);
      if (calls.filter((c) => c.startsWith('apply')).length > 1) return answered();
      return new Promise<void>((resolve) => {
        finish = () => {
          answers++;
          resolve();
        };
      });
    },
    commit: (position: { version: number }) => {
      calls.push(`commit ${position.version}`);
      return answered();
    },
    applyBatch: () => answered(),
    rollback: () => {
      calls.push('rollback');
      return answered();
    },
  } as unknown as ReplicaTarget;
  return { target, calls, finish: () => finish() };
}

function host(): ApplierHost & { stopping: boolean } {
  return {
    stopping: false,
    status: () => undefined,
    applied: () => undefined,
    duplicates: () => undefined,
    note: () => undefined,
    needsRewind: () => undefined,
    roundCommitted: () => false,
  };
}

describe('a replica found busy in the middle of a large packet', () => {
  useFakeTimers();

  it('keeps its place in the window and counts as busy, then lands the packet', async () => {
    // A large one-phase packet of 3 parts (seq 0-2), then a small one (seq 3).
    const window = new PacketWindow(1_000_000);
    for (const part of makePackets([
      [false, 3, 10],
      [false, 1, 10],
    ]).flat())
      window.push(part);
    // The other replica has passed them all.
    window.setCursor('r2', 4);
    const { target, calls, finish } = busyTarget();
    const agent = host();
    const applier = new ReplicaApplier(
      'r1',
      target,
      window,
      {} as ReplicaParticipant,
      { node: 'r1', batchRows: 1_000, batchMs: 10, applyTimeoutMs: TIMEOUT_MS },
      agent,
    );
    const run = applier.run({ version: 0, lsn: ZERO_LSN });
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 3);
    expect(calls).toEqual(['begin 0', 'apply 1']);
    expect(applier.busy).toBe(true);
    // Let go, the window would drop the packet's parts the busy replica has yet to apply.
    window.hasRoom();
    expect(window.start).toBe(1);

    finish();
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(applier.busy).toBe(false);
    expect(calls).toEqual(['begin 0', 'apply 1', 'apply 1', 'apply 1', 'commit 1']);
    agent.stopping = true;
    window.setCursor('r2', 4); // wakes the applier's wait on the window
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    await run;
  });
});
