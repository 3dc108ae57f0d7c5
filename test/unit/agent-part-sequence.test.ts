import { describe, expect, it } from 'vitest';
import { PartSequence } from '../../plugin/agent/part-sequence.js';
import type { Lsn, PacketPart } from '../../plugin/protocol/index.js';

function part(version: number, index: number, final: boolean): PacketPart {
  return {
    header: { version, lsn: `0/${version.toString(16)}` as Lsn, xid: version, commitTime: '' },
    index,
    changes: [],
    final: final ? { phase: 'one' } : null,
  };
}

describe('the parts an agent reads from the bus', () => {
  it('takes packets in order, the parts of one sharing its first header', () => {
    const sequence = new PartSequence(5);
    expect(sequence.check(part(5, 0, true)).verdict).toBe('take');
    const first = sequence.check(part(6, 0, false));
    const second = sequence.check(part(6, 1, true));
    if (first.verdict !== 'take' || second.verdict !== 'take') throw new Error('not taken');
    expect(second.part.header).toBe(first.part.header);
    expect(sequence.expected).toEqual({ version: 7, index: 0 });
  });

  it('passes over what it already took (a packet stored twice)', () => {
    const sequence = new PartSequence(3);
    sequence.check(part(3, 0, false));
    sequence.check(part(3, 1, false));
    expect(sequence.check(part(3, 0, false)).verdict).toBe('duplicate');
    expect(sequence.check(part(2, 0, true)).verdict).toBe('duplicate');
    expect(sequence.check(part(3, 2, true)).verdict).toBe('take');
  });

  it('calls a missing packet or part a gap, never skipping it', () => {
    expect(new PartSequence(3).check(part(4, 0, true)).verdict).toBe('gap');
    expect(new PartSequence(3).check(part(3, 1, true)).verdict).toBe('gap');
    const sequence = new PartSequence(3);
    sequence.check(part(3, 0, false));
    expect(sequence.check(part(4, 0, true)).verdict).toBe('gap');
  });
});
