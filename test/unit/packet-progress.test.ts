import { describe, expect, it } from 'vitest';
import { PacketProgress } from '../../plugin/replica/packet-progress.js';

/** A replica connection whose answered statements the test counts. */
function world() {
  const replica = { answers: 0 };
  const progress = new PacketProgress(() => replica.answers);
  /** Applies `indexes` of packet 10, each part answered `answers` times. */
  const apply = (indexes: number[], answers = 4) => {
    for (const index of indexes) {
      progress.started(10, index);
      replica.answers += answers;
      progress.ended(true);
    }
  };
  return { replica, progress, apply };
}

describe("PacketProgress: a round's new work on a large packet, nothing else", () => {
  it('grows with the answers to a part never applied before, and with each part done', () => {
    const { replica, progress } = world();
    expect(progress.of(10, 'g1')).toBe(-1);
    progress.started(10, 0);
    const start = progress.of(10, 'g1');
    replica.answers += 3;
    const during = progress.of(10, 'g1');
    expect(during).toBeGreaterThan(start);
    progress.ended(true);
    const afterFirst = progress.of(10, 'g1');
    expect(afterFirst).toBeGreaterThan(during);
    progress.started(10, 1);
    progress.ended(true);
    expect(progress.of(10, 'g1')).toBeGreaterThan(afterFirst);
    expect(progress.of(11, 'g1')).toBe(-1);
  });

  it('stays put while the transaction only idles: keepalive answers between parts are no work', () => {
    const { replica, progress, apply } = world();
    apply([0]);
    const idle = progress.of(10, 'g1');
    for (let i = 0; i < 5; i++) replica.answers += 2;
    expect(progress.of(10, 'g1')).toBe(idle);
  });

  it('stays put, for the same round, while parts are applied again after a restart', () => {
    const { replica, progress, apply } = world();
    progress.of(10, 'g1');
    apply([0, 1, 2]);
    const furthest = progress.of(10, 'g1');
    for (const index of [0, 1, 2]) {
      progress.started(10, index);
      replica.answers += 4;
      expect(progress.of(10, 'g1')).toBe(furthest);
      progress.ended(true);
    }
    expect(progress.of(10, 'g1')).toBe(furthest);
    // The first part that round has not seen applied is new work again.
    progress.started(10, 3);
    replica.answers += 1;
    expect(progress.of(10, 'g1')).toBeGreaterThan(furthest);
  });

  it('counts the apply afresh for the next round: its packet was rolled back with the last one', () => {
    const { progress, apply } = world();
    progress.of(10, 'g1');
    apply([0, 1, 2, 3]);
    // Round g1 ended; the packet is applied again from its start for round g2.
    apply([0]);
    const first = progress.of(10, 'g2');
    apply([1]);
    const second = progress.of(10, 'g2');
    expect(second).toBeGreaterThan(first);
    apply([2]);
    expect(progress.of(10, 'g2')).toBeGreaterThan(second);
  });

  it("counts the re-apply from 0 for a round that starts counting after the packet's transaction ended", () => {
    const { progress, apply } = world();
    progress.of(10, 'g1');
    apply([0, 1, 2, 3]);
    // Prepared and rolled back (or failed): the next round looks before the re-apply begins.
    progress.closed();
    expect(progress.of(10, 'g2')).toBe(-1);
    apply([0]);
    const first = progress.of(10, 'g2');
    apply([1]);
    expect(progress.of(10, 'g2')).toBeGreaterThan(first);
  });

  it('does not count a part that failed as done', () => {
    const { progress, apply } = world();
    apply([0]);
    const before = progress.of(10, 'g1');
    progress.started(10, 1);
    progress.ended(false);
    expect(progress.of(10, 'g1')).toBe(before);
  });
});
