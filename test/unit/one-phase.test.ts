import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lsnFromBigInt } from '../../plugin/protocol/lsn.js';
import { decideOnePhase, movesPast } from '../../plugin/protocol/one-phase.js';

describe('decideOnePhase', () => {
  it('applies the next packet', () => {
    expect(decideOnePhase(41, 42)).toEqual({ action: 'apply' });
  });

  it('skips a packet the replica already has', () => {
    expect(decideOnePhase(42, 42)).toEqual({ action: 'skip-duplicate' });
    expect(decideOnePhase(50, 42)).toEqual({ action: 'skip-duplicate' });
  });

  it('asks for exactly the missing packets on a gap', () => {
    expect(decideOnePhase(41, 43)).toEqual({ action: 'request-delta', from: 42, to: 42 });
    expect(decideOnePhase(0, 10)).toEqual({ action: 'request-delta', from: 1, to: 9 });
  });

  it('rejects impossible versions', () => {
    expect(() => decideOnePhase(-1, 1)).toThrow(RangeError);
    expect(() => decideOnePhase(0, 0)).toThrow(RangeError);
    expect(() => decideOnePhase(1.5, 3)).toThrow(RangeError);
  });

  it('classifies every pair into exactly one of the three cases', () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), fc.integer({ min: 1, max: 1_000_000 }), (r, v) => {
        const decision = decideOnePhase(r, v);
        if (r === v - 1) expect(decision.action).toBe('apply');
        else if (r >= v) expect(decision.action).toBe('skip-duplicate');
        else expect(decision).toEqual({ action: 'request-delta', from: r + 1, to: v - 1 });
      }),
    );
  });

  /**
   * Model: packets 1..n arrive at a replica in any order, with duplicates and
   * losses; the replica follows the rule, fetching deltas from the primary's log.
   * Whatever the arrival order, it ends with every packet applied exactly once, in order.
   */
  it('delivers every packet exactly once and in order, whatever arrives', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 60 })
          .chain((n) =>
            fc.tuple(fc.constant(n), fc.array(fc.integer({ min: 1, max: n }), { maxLength: 200 })),
          ),
        ([n, arrivals]) => {
          let version = 0;
          const applied: number[] = [];
          const deliver = (v: number) => {
            const decision = decideOnePhase(version, v);
            if (decision.action === 'skip-duplicate') return;
            if (decision.action === 'request-delta') {
              for (let d = decision.from; d <= decision.to; d++) {
                expect(decideOnePhase(version, d).action).toBe('apply');
                applied.push(d);
                version = d;
              }
            }
            applied.push(v);
            version = v;
          };
          for (const v of arrivals) deliver(v);
          deliver(n); // the stream always ends with its latest packet
          expect(applied).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        },
      ),
    );
  });
});

describe('movesPast', () => {
  const at = (version: number, lsn: bigint) => ({ version, lsn: lsnFromBigInt(lsn) });

  it('refuses a packet at or below the LSN held', () => {
    expect(movesPast(at(4, 0x50n), at(5, 0x51n))).toBe(true);
    expect(movesPast(at(4, 0x50n), at(5, 0x50n))).toBe(false);
    expect(movesPast(at(4, 0x1_0000_0000n), at(5, 0xffff_ffffn))).toBe(false);
  });

  /**
   * Model: a stream of commits at increasing LSNs; the replica holds a prefix,
   * at its last packet's LSN or an idle point before the next commit. The
   * genuine next packet always moves past; a numbering shifted by `d` (a
   * re-derive that counted `d` packets more) is refused whenever its next
   * version is one the replica already has — it is never applied twice.
   */
  it('passes the genuine next packet and refuses a shifted one that repeats', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 1_000 }), { minLength: 2, maxLength: 40 }),
        fc.nat(),
        fc.boolean(),
        fc.integer({ min: 1, max: 5 }),
        (gaps, pick, idle, d) => {
          const lsns: bigint[] = [];
          for (const gap of gaps) lsns.push((lsns.at(-1) ?? 0n) + BigInt(gap));
          const k = 1 + (pick % (lsns.length - 1));
          const own = lsns[k - 1] as bigint;
          const next = lsns[k] as bigint;
          // An idle point: the end of WAL less one, after packet k and before packet k + 1.
          const held = at(k, idle && next - own > 1n ? next - 1n : own);
          expect(movesPast(held, at(k + 1, next))).toBe(true);
          // Shifted: version k + 1 now names the packet that had version k + 1 - d.
          const repeated = k + 1 - d;
          if (repeated >= 1)
            expect(movesPast(held, at(k + 1, lsns[repeated - 1] as bigint))).toBe(false);
        },
      ),
    );
  });
});
