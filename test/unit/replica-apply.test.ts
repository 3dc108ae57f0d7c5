import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ApplyStep,
  applyTransition,
  PacketNotPastError,
  type PacketPart,
  startApply,
} from '../../plugin/protocol/index.js';
import { makePackets, World } from './replica-apply-world.js';

/** One random move of the world: the machine, the stream, the coordinator, the clock, or trouble. */
function chaos(w: World, choose: (n: number) => number): void {
  switch (choose(10)) {
    case 0:
    case 1:
    case 2:
      if (w.step && w.canAnswer()) w.respond(choose(10) === 0);
      return;
    case 3:
    case 4:
      w.push();
      return;
    case 5:
      if (!w.rewind(false)) w.rewind(choose(4) === 0);
      return;
    case 6:
      w.coordinate(false);
      return;
    case 7:
      w.clock += choose(15);
      return;
    case 8:
      if (!w.step) w.start();
      else if (choose(3) === 0) w.crash();
      else if (choose(2) === 0) w.stop();
      return;
    default:
      w.coordinate(false);
  }
}

/**
 * Then calm: no failures, a coordinator that commits, the stream delivers.
 * Every state must have a way out: the replica reaches the stream's end.
 */
function settle(w: World): void {
  for (let guard = 0; guard < 50_000 && !w.done; guard++) {
    if (w.step && w.canAnswer()) w.respond(false);
    else if (w.coordinate(true) || w.rewind(false) || w.push()) continue;
    else if (!w.step) w.start();
    else {
      const command = w.step.commands[w.step.commands.length - 1];
      const timed = command?.type === 'look' && typeof command.wait === 'object';
      expect(timed, `stuck in ${w.step.state.mode.kind} at ${command?.type}`).toBe(true);
      w.clock += 10;
    }
  }
  expect(w.db.applied).toEqual(w.packets.map((_, i) => i + 1));
  expect(w.done).toBe(true);
}

const packetSpec = fc.array(
  fc
    .tuple(fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))
    .map(
      ([two, parts, rows]) =>
        [two && parts === 1 ? true : two && parts > 1, parts, rows] as [boolean, number, number],
    ),
  { minLength: 1, maxLength: 14 },
);

describe('replica apply machine (model tests)', () => {
  it('applies every packet exactly once and in order, nothing after a two-phase one before its decision, and always finds a way out', () => {
    fc.assert(
      fc.property(
        packetSpec,
        fc.integer({ min: 1, max: 25 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat(1_000), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 0, max: 400 }),
        (spec, extra, batchRows, choices, steps) => {
          // The window holds more than a round (at most batchRows rows), as in the sidecar.
          const windowChanges = batchRows + extra;
          let i = 0;
          const choose = (n: number) => (choices[i++ % choices.length] as number) % n;
          const w = new World(makePackets(spec), windowChanges, batchRows, choose);
          w.start();
          for (let s = 0; s < steps; s++) chaos(w, choose);
          settle(w);
        },
      ),
      { numRuns: 1_500 },
    );
  }, 60_000);
});

describe('replica apply machine (examples)', () => {
  const options = { node: 'r', batchRows: 100, batchMs: 10 };
  const packets = makePackets([
    [false, 1, 1],
    [false, 1, 1],
    [true, 1, 1],
  ]).map((p) => p[0] as PacketPart);
  const [first, second] = packets as [PacketPart, PacketPart];
  const look = (part: PacketPart | undefined, now = 0) =>
    ({
      type: 'look',
      epoch: 0,
      now,
      part,
      start: 0,
      cut: null,
      more: false,
      cutBefore: null,
      newestVersion: 3,
      idle: null,
    }) as const;

  it('batches packets that keep coming, and commits them once their time is up', () => {
    let step: ApplyStep = startApply(options, { version: 0, lsn: '0/0' as never }, 0, 0);
    step = applyTransition(step.state, { ...look(packets[0]), more: true });
    expect(step.commands.map((c) => c.type)).toEqual(['status', 'set-cursor', 'look']);
    step = applyTransition(step.state, look(packets[1]));
    step = applyTransition(step.state, look(undefined, 3));
    expect(step.commands).toEqual([{ type: 'look', seq: 2, wait: { ms: 7, batch: 1 } }]);
    step = applyTransition(step.state, look(undefined, 10));
    expect(step.commands.map((c) => c.type)).toEqual(['cut-newest', 'apply-batch']);
    expect(step.commands[1]).toMatchObject({ position: { version: 2 } });
  });

  it('waits at a two-phase packet until its prepare, then votes yes after PREPARE', () => {
    const at = { version: 2, lsn: '0/20' as never };
    let step: ApplyStep = startApply(options, at, 0, 2);
    step = applyTransition(step.state, look(packets[2]));
    expect(step.commands.at(-1)).toEqual({ type: 'gate', version: 3, seq: 2, wait: false });
    const gate = {
      type: 'gate',
      epoch: 0,
      now: 0,
      pending: null,
      committedThrough: 0,
      roundCommitted: false,
      cut: 'rows',
      more: true,
    } as const;
    step = applyTransition(step.state, gate);
    expect(step.commands).toEqual([{ type: 'gate', version: 3, seq: 2, wait: true }]);
    step = applyTransition(step.state, { ...gate, pending: { gid: 'g', from: 3, to: 3 } });
    expect(step.commands.map((c) => c.type)).toEqual(['take-prepare', 'look']);
    step = applyTransition(step.state, look(packets[2]));
    expect(step.commands).toMatchObject([{ type: 'apply-batch', gid: 'g' }]);
    step = applyTransition(step.state, { type: 'done' });
    expect(step.commands).toEqual([{ type: 'vote-yes', gid: 'g' }]);
    step = applyTransition(step.state, { type: 'decision', outcome: 'committed' });
    expect(step.commands.map((c) => c.type)).toEqual(['applied', 'set-cursor', 'look']);
  });

  it('halts before a packet that is next by version but not past the LSN held', () => {
    // Packet 2's transaction came back numbered 3 (a re-derive that counted one more).
    const renumbered = { ...second, header: { ...second.header, version: 3 } };
    let step: ApplyStep = startApply(options, second.header, 0, 0);
    step = applyTransition(step.state, look(renumbered));
    expect(step.commands).toHaveLength(1);
    const fail = step.commands[0] as { type: string; error: PacketNotPastError };
    expect(fail.type).toBe('fail');
    expect(fail.error).toBeInstanceOf(PacketNotPastError);
    expect(fail.error).toMatchObject({
      held: { version: 2, lsn: '0/20' },
      packet: { version: 3, lsn: '0/20' },
    });
  });

  it('commits the batch before such a packet, then halts', () => {
    const older = { ...first, header: { ...first.header, version: 2 } };
    let step: ApplyStep = startApply(options, { version: 0, lsn: '0/0' as never }, 0, 0);
    step = applyTransition(step.state, { ...look(packets[0]), more: true });
    step = applyTransition(step.state, look(older));
    expect(step.commands).toMatchObject([{ type: 'apply-batch', position: { version: 1 } }]);
    step = applyTransition(step.state, { type: 'done' });
    expect(step.commands.map((c) => c.type)).toEqual(['applied', 'fail']);
    expect(step.commands[1]).toMatchObject({ error: { held: { version: 1, lsn: '0/10' } } });
  });

  it('throws on an event that does not fit its state (a driver bug)', () => {
    const step = startApply(options, { version: 0, lsn: '0/0' as never }, 0, 0);
    expect(() => applyTransition(step.state, { type: 'done' })).toThrow(/does not fit/);
  });
});
