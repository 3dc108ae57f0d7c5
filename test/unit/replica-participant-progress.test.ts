import { describe, expect, it } from 'vitest';
import type { PrepareRequest } from '../../plugin/coordinator/round-participant.js';
import { toLsn } from '../../plugin/protocol/index.js';
import {
  type ParticipantHost,
  ReplicaParticipant,
} from '../../plugin/replica/replica-participant.js';

const request = (gid: string): PrepareRequest => ({
  gid,
  round: 1,
  from: 10,
  to: 10,
  toLsn: toLsn('0/10'),
});

/** A replica at version 9 whose answered statements the test counts. */
function participant() {
  const replica = { answers: 0 };
  const host: ParticipantHost = {
    name: 'r1',
    position: { version: 9, lsn: toLsn('0/9') },
    stopping: false,
    inBackoff: false,
    failed: false,
    failure: null,
    heard: () => replica.answers,
    notLanded: () => undefined,
  };
  return { replica, participant: new ReplicaParticipant(host) };
}

describe("ReplicaParticipant.progress: its replica's answers for the round it took, nothing else", () => {
  it('is -1 while the prepare is parked, whatever the replica answers (keepalives)', async () => {
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
});
