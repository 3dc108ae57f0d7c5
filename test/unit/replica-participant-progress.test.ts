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

/** A replica at version 9 whose answered statements the test counts, and its applier's work on a large packet. */
function participant(position: ParticipantHost['position'] = { version: 9, lsn: toLsn('0/9') }) {
  const replica = { answers: 0, packet: -1, packetProgress: 0, position };
  const host: ParticipantHost = {
    name: 'r1',
    get position() {
      return replica.position;
    },
    stopping: false,
    inBackoff: false,
    failed: false,
    failure: null,
    heard: () => replica.answers,
    progressOn: (version) => (version === replica.packet ? replica.packetProgress : -1),
    notLanded: () => undefined,
  };
  return { replica, participant: new ReplicaParticipant(host) };
}

/** A participant whose prepare for version 10 is parked while its applier works on packet 10. */
async function parkedOnPacket(packetProgress: number) {
  const world = participant();
  void world.participant.prepare(request('lockstep_s_10_1e1'));
  await Promise.resolve();
  world.replica.packet = 10;
  world.replica.packetProgress = packetProgress;
  return world;
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

  it("counts the applier's new work on the round's own packet before the gate", async () => {
    const { replica, participant: p } = await parkedOnPacket(4);
    expect(p.progress('lockstep_s_10_1e1')).toBe(4);
    replica.packetProgress = 6;
    expect(p.progress('lockstep_s_10_1e1')).toBe(6);
    // Another round's gid, or another packet open, is not this round's progress.
    expect(p.progress('lockstep_s_10_2e1')).toBe(-1);
    replica.packet = 11;
    expect(p.progress('lockstep_s_10_1e1')).toBe(-1);
  });

  it('goes on from its parked count once taken, never below it', async () => {
    const { replica, participant: p } = await parkedOnPacket(9_000_000);
    replica.answers = 500;
    const parked = p.progress('lockstep_s_10_1e1');
    p.take();
    const taken = p.progress('lockstep_s_10_1e1');
    expect(taken).toBeGreaterThan(parked);
    // The replica answers the prepare's statements: the count grows from there.
    replica.answers = 502;
    expect(p.progress('lockstep_s_10_1e1')).toBeGreaterThan(taken);
  });

  it('is -1 for a round of several packets: those are whole before the gate, never streamed', async () => {
    const { replica, participant: p } = participant();
    void p.prepare(request('lockstep_s_10_1e1', 12));
    await Promise.resolve();
    replica.packet = 10;
    replica.packetProgress = 4;
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

  it('never parks the prepare of a round that ended while it waited for the replica position', async () => {
    const { replica, participant: p } = participant(null);
    const vote = p.prepare(request('lockstep_s_10_1e1'));
    await Promise.resolve();
    p.ended('lockstep_s_10_1e1');
    replica.position = { version: 9, lsn: toLsn('0/9') };
    expect(await vote).toMatchObject({ vote: 'no', reason: expect.stringContaining('1e1') });
    expect(p.pending).toBeNull();
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
