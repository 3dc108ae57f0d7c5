import { describe, expect, it } from 'vitest';
import type { PrepareRequest } from '../../plugin/coordinator/round-participant.js';
import { toLsn } from '../../plugin/protocol/index.js';
import {
  type ParticipantHost,
  ReplicaParticipant,
} from '../../plugin/replica/replica-participant.js';

const request = (gid: string, to = 10): PrepareRequest => ({
  gid,
  round: 1,
  from: 10,
  to,
  toLsn: toLsn('0/10'),
});

/** A replica at version 9 whose answered statements the test counts, and the large packet its applier has open. */
function participant() {
  const replica = { answers: 0, applying: null as number | null };
  const host: ParticipantHost = {
    name: 'r1',
    position: { version: 9, lsn: toLsn('0/9') },
    stopping: false,
    inBackoff: false,
    failed: false,
    failure: null,
    heard: () => replica.answers,
    get applying() {
      return replica.applying;
    },
    notLanded: () => undefined,
  };
  return { replica, participant: new ReplicaParticipant(host) };
}

describe("ReplicaParticipant.progress: its replica's answers for the round it works on, nothing else", () => {
  it('is -1 while the prepare is parked behind other work, whatever the replica answers (keepalives)', async () => {
    const { replica, participant: p } = participant();
    void p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    replica.answers = 5;
    expect(p.pending?.gid).toBe('lockstep_s_10_1e1');
    expect(p.progress('lockstep_s_10_1e1')).toBe(-1);
  });

  it("counts the replica's answers once taken, for that gid only", async () => {
    const { replica, participant: p } = participant();
    void p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    p.take();
    replica.answers = 3;
    expect(p.progress('lockstep_s_10_1e1')).toBe(3);
    replica.answers = 8;
    expect(p.progress('lockstep_s_10_1e1')).toBe(8);
    // A later round's deadline is not extended by this round's apply.
    expect(p.progress('lockstep_s_10_2e1')).toBe(-1);
    p.answer({ vote: 'no', reason: 'done' });
    expect(p.progress('lockstep_s_10_1e1')).toBe(-1);
  });

  it("counts the replica's answers on the parts of the round's own packet before the gate", async () => {
    const { replica, participant: p } = participant();
    void p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    replica.applying = 10;
    replica.answers = 4;
    expect(p.progress('lockstep_s_10_1e1')).toBe(4);
    replica.answers = 6;
    expect(p.progress('lockstep_s_10_1e1')).toBe(6);
    // Another round's gid, or another packet open, is not this round's progress.
    expect(p.progress('lockstep_s_10_2e1')).toBe(-1);
    replica.applying = 11;
    expect(p.progress('lockstep_s_10_1e1')).toBe(-1);
  });

  it('is -1 for a round of several packets: those are whole before the gate, never streamed', async () => {
    const { replica, participant: p } = participant();
    void p.prepare(request('lockstep_s_10_1e1', 12));
    await Promise.resolve();
    replica.applying = 10;
    replica.answers = 4;
    expect(p.progress('lockstep_s_10_1e1')).toBe(-1);
  });
});

describe('ReplicaParticipant: a prepare whose round ended is never taken at the gate', () => {
  it('drops the parked prepare of a round that ended, answering no', async () => {
    const { participant: p } = participant();
    const vote = p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    p.ended('lockstep_s_10_2e1');
    expect(p.pending?.gid).toBe('lockstep_s_10_1e1');
    p.ended('lockstep_s_10_1e1');
    expect(p.pending).toBeNull();
    expect(await vote).toMatchObject({ vote: 'no', reason: expect.stringContaining('1e1') });
  });

  it('drops it when the coordinator says the round was rolled back', async () => {
    const { participant: p } = participant();
    const vote = p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    p.decided(request('lockstep_s_10_1e1'), 'rolled-back');
    expect(p.pending).toBeNull();
    expect(await vote).toMatchObject({ vote: 'no' });
  });

  it('keeps a prepare the applier took: its answer comes from the applier', async () => {
    const { participant: p } = participant();
    const vote = p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    p.take();
    p.ended('lockstep_s_10_1e1');
    p.answer({ vote: 'yes' });
    expect(await vote).toEqual({ vote: 'yes' });
  });
});
