import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lsnFromBigInt, lsnToBigInt } from '../../plugin/protocol/lsn.js';
import { SyncedAcks, syncMarginMs } from '../../plugin/sidecar/synced-acks.js';

const lsn = (n: number) => lsnFromBigInt(BigInt(n));
const MIN = 60_000;

describe('SyncedAcks', () => {
  it('releases an LSN only once the interval and its margin passed since its ack', () => {
    const acks = new SyncedAcks(2 * MIN);
    const wait = 2 * MIN + syncMarginMs(2 * MIN);
    acks.add(0, lsn(100));
    acks.add(5_000, lsn(200));
    expect(acks.due(wait - 1)).toBeNull();
    expect(acks.due(wait)).toBe(lsn(100));
    expect(acks.due(wait + 4_999)).toBeNull();
    expect(acks.due(wait + 5_000)).toBe(lsn(200));
    expect(acks.released).toBe(lsn(200));
  });

  it('keeps a margin of a tenth of the interval, at least a second; none for "always"', () => {
    expect(syncMarginMs(2 * MIN)).toBe(12_000);
    expect(syncMarginMs(3_000)).toBe(1_000);
    expect(syncMarginMs(0)).toBe(0);
  });

  it('releases at once with an interval of 0 (servers that sync before they acknowledge)', () => {
    const acks = new SyncedAcks(0);
    acks.add(7, lsn(100));
    expect(acks.due(7)).toBe(lsn(100));
  });

  it('dates a second of acks by its last: none released early, a steady flow still released', () => {
    const acks = new SyncedAcks(3_000);
    // An ack every 100 ms for a minute: each bucket spans a second at most.
    for (let t = 0; t < MIN; t += 100) acks.add(t, lsn(t + 1));
    const due = acks.due(10_000);
    expect(due).not.toBeNull();
    expect(Number(lsnToBigInt(due as never))).toBeLessThanOrEqual(10_000 - 4_000 + 1);
    expect(Number(lsnToBigInt(due as never))).toBeGreaterThanOrEqual(10_000 - 4_000 - 1_000);
  });

  it('forgets what waits past where the bus ends on a restart, and waits for the restart point', () => {
    const acks = new SyncedAcks(3_000);
    acks.add(0, lsn(100));
    acks.add(2_000, lsn(300));
    acks.restart(2_500, lsn(200));
    expect(acks.due(4_000)).toBe(lsn(100));
    expect(acks.due(6_499)).toBeNull();
    expect(acks.due(6_500)).toBe(lsn(200));
    expect(acks.due(60_000)).toBeNull();
  });

  it('never releases an LSN before its ack is the wait old, nor goes back (property)', () => {
    const wait = 3_000 + syncMarginMs(3_000);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            step: fc.integer({ min: 0, max: 2_500 }),
            lsnStep: fc.integer({ min: 0, max: 50 }),
            look: fc.boolean(),
            restart: fc.boolean(),
          }),
          { maxLength: 200 },
        ),
        (events) => {
          const acks = new SyncedAcks(3_000);
          // When each LSN was (last) acknowledged or re-found by a restart.
          const ackedAt = new Map<number, number>();
          let [now, last, released] = [0, 1, 0];
          for (const event of events) {
            now += event.step;
            if (event.restart) {
              const end = Math.max(released, last - event.lsnStep, 1);
              acks.restart(now, lsn(end));
              for (const key of ackedAt.keys()) if (key > end) ackedAt.delete(key);
              if (end > released && !ackedAt.has(end)) ackedAt.set(end, now);
              last = end;
            } else {
              last += event.lsnStep;
              if (last > released && !ackedAt.has(last)) ackedAt.set(last, now);
              acks.add(now, lsn(last));
            }
            const due = event.look ? acks.due(now) : null;
            if (!due) continue;
            const value = Number(lsnToBigInt(due));
            expect(value).toBeGreaterThan(released);
            expect(now - (ackedAt.get(value) ?? Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(
              wait,
            );
            released = value;
          }
        },
      ),
    );
  });
});
