import { describe, expect, it } from 'vitest';
import type { SequenceValue } from '../../plugin/protocol/sequence-values.js';
import { gatedSequenceCopy, type SequenceCopyTarget } from '../../plugin/sidecar/sequence-copy.js';
import { REPEAT_EVERY } from '../../plugin/sidecar/sequence-relay.js';

const r1 = { name: 'r1', url: 'postgres://r1/db' };
const r2 = { name: 'r2', url: 'postgres://r2/db' };
const at = (lastValue: string): SequenceValue[] => [{ schema: 'public', name: 's', lastValue }];

/** A copy over a primary whose values the test sets, and replicas that log what reached them. */
function harness(failing: Set<string> = new Set()) {
  let primary = at('1');
  const reached: string[] = [];
  const copy = gatedSequenceCopy(
    async () => primary,
    async (replica: SequenceCopyTarget, values) => {
      if (failing.has(replica.name)) throw new Error(`${replica.name} down`);
      reached.push(`${replica.name}@${values[0]?.lastValue}`);
      return 1;
    },
  );
  return {
    copy,
    reached,
    set: (value: string) => {
      primary = at(value);
    },
  };
}

describe('the in-process sequence copy', () => {
  it('reaches a replica again only when the values changed, or every REPEAT_EVERY periods', async () => {
    const h = harness();
    await h.copy([r1, r2]);
    expect(h.reached).toEqual(['r1@1', 'r2@1']);
    for (let i = 1; i < REPEAT_EVERY; i++) await h.copy([r1, r2]);
    expect(h.reached).toHaveLength(2);
    await h.copy([r1, r2]);
    expect(h.reached.slice(2)).toEqual(['r1@1', 'r2@1']);
    h.set('7');
    await h.copy([r1, r2]);
    expect(h.reached.slice(4)).toEqual(['r1@7', 'r2@7']);
  });

  it('tries a replica that failed again the next period, the others staying skipped', async () => {
    const failing = new Set(['r2']);
    const h = harness(failing);
    const first = await h.copy([r1, r2]);
    expect(first.failed).toEqual({ r2: 'r2 down' });
    expect(first.advanced).toEqual({ r1: 1 });
    failing.clear();
    const second = await h.copy([r1, r2]);
    expect(second.advanced).toEqual({ r2: 1 });
    expect(h.reached).toEqual(['r1@1', 'r2@1']);
  });

  it('copies at once to a replica added, or whose URL changed', async () => {
    const h = harness();
    await h.copy([r1]);
    await h.copy([r1, r2]);
    await h.copy([r1, { ...r2, url: 'postgres://elsewhere/db' }]);
    expect(h.reached).toEqual(['r1@1', 'r2@1', 'r2@1']);
  });
});
