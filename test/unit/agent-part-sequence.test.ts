import { describe, expect, it } from 'vitest';
import { PartSequence } from '../../plugin/agent/part-sequence.js';
import type { Change, Lsn, PacketPart } from '../../plugin/protocol/index.js';

function part(version: number, index: number, final: boolean, changes = 0): PacketPart {
  return {
    header: { version, lsn: `0/${version.toString(16)}` as Lsn, xid: version, commitTime: '' },
    index,
    changes: Array.from({ length: changes }, () => ({}) as Change),
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

  it('calls a message whose count of changes does not add up a gap (another publisher cut it)', () => {
    // Ours: 25 changes, then 19 (through 44); a deposed publisher's third message holds 25 (through 75).
    const sequence = new PartSequence(10);
    expect(sequence.check(part(10, 0, false, 25), 25).verdict).toBe('take');
    expect(sequence.check(part(10, 1, false, 19), 44).verdict).toBe('take');
    expect(sequence.check(part(10, 2, false, 25), 75).verdict).toBe('gap');
    // Read again from the packet's start, the chain that adds up is taken.
    const again = new PartSequence(10);
    expect(again.check(part(10, 0, false, 25), 25).verdict).toBe('take');
    expect(again.check(part(10, 1, false, 19), 44).verdict).toBe('take');
    expect(again.check(part(10, 2, true, 56), 100).verdict).toBe('take');
    // A count the log does not say (a whole packet inside a message of several) is not checked.
    expect(again.check(part(11, 0, true, 3), null).verdict).toBe('take');
  });
});
