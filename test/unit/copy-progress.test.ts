import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyProgress } from '../../plugin/cli/copy-progress.js';

const MB = 1024 * 1024;

describe('attach copy progress by bytes', () => {
  it('estimates bytes from rows, with rate and ETA per table and overall, exact once done', () => {
    const p = new CopyProgress();
    p.plan(
      [
        { replica: 'r1', table: 'public.a', bytes: 100 * MB, rows: 1_000_000 },
        { replica: 'r1', table: 'public.b', bytes: 20 * MB, rows: 10 },
      ],
      0,
    );
    p.update('r1', 'public.a', 250_000, false, 1_000);
    p.update('r1', 'public.a', 500_000, false, 6_000);
    // 50 MB in the 5 s since its first report: 10 MB/s, 50 MB left.
    expect(p.tableLine('r1', 'public.a', 6_000)).toBe(
      'r1: public.a  500,000 rows  ~50.0 MB of 100.0 MB (50 %)  10.0 MB/s  ETA 5 s',
    );
    p.update('r1', 'public.b', 10, true, 8_000);
    expect(p.tableLine('r1', 'public.b', 8_000)).toBe('r1: public.b  10 rows  20.0 MB in 0.0 s');
    // 70 of 120 MB in 10 s: 7 MB/s, 50 MB left ≈ 8 s.
    expect(p.overallLine(10_000)).toBe('copied ~70.0 MB of 120.0 MB (58 %)  7.0 MB/s  ETA 8 s');
  });

  it('never shows an unfinished copy as complete, whatever the planner estimated', () => {
    fc.assert(
      fc.property(fc.nat(10_000_000), fc.nat(10_000_000), (estimate, copied) => {
        const p = new CopyProgress();
        p.plan([{ replica: 'r', table: 't', bytes: 100 * MB, rows: estimate }], 0);
        p.update('r', 't', copied, false, 1_000);
        expect(p.overallLine(1_000)).not.toMatch(/\(100 %\)/);
      }),
    );
  });
});
