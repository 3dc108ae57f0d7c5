import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AgentMigrations } from '../../plugin/agent/agent-migrations.js';
import { AgentRoundServer, type AgentRoundsWiring } from '../../plugin/agent/agent-round-server.js';
import { NotLandedError } from '../../plugin/ports/lockstep-error.js';
import type { PreparedGid } from '../../plugin/ports/phase-two-node.js';
import { ZERO_LSN } from '../../plugin/protocol/index.js';
import type { WirePrepare, WireReply, WireVote } from '../../plugin/protocol/round-subjects.js';
import type { ReplicaParticipant } from '../../plugin/replica/replica-participant.js';

const GID = 'lockstep_s_7_3e2';
const MIGRATION = 'lockstep_s_m1700000000000_1';
const REQUEST: WirePrepare = { gid: GID, round: 3, from: 7, to: 7, toLsn: ZERO_LSN };

/** A replica with prepared gids, a participant that answers what it is told, and a coordinator's answers. */
function world(
  answer: () => Promise<WireReply<'commit' | 'abort'>>,
  migrations?: AgentRoundsWiring['migrations'],
) {
  const prepared = new Map<string, PreparedGid>();
  const decided: string[] = [];
  /** Gids the participant was told ended (a prepare still parked is dropped). */
  const ended: string[] = [];
  /** Gids the participant was told did not land (its status error, its counter). */
  const notLanded: string[] = [];
  let vote: (v: WireVote) => void = () => undefined;
  const participant = {
    heldVersion: 6,
    committedThrough: 0,
    nudged: 0,
    progress: () => -1,
    prepare: () =>
      new Promise<WireVote>((resolve) => {
        vote = (v) => {
          if (v.vote === 'yes')
            prepared.set(GID, { gid: GID, preparedAt: '', ageSeconds: 0, kind: 'stream' });
          resolve(v);
        };
      }),
    decided: (request: WirePrepare, outcome: string) => decided.push(`${request.gid} ${outcome}`),
    ended: (gid: string) => ended.push(gid),
    notLanded: (_request: WirePrepare | null, error: NotLandedError) => notLanded.push(error.gid),
    nudge() {
      this.nudged++;
    },
  };
  const wiring: AgentRoundsWiring = {
    serve: () => async () => undefined,
    ask: answer,
    waiting: () => undefined,
    stream: 's',
    recoveryIntervalMs: 30_000,
    migrations,
    node: {
      node: 'r1',
      list: async () => [...prepared.values()],
      commit: async (gid) => {
        prepared.delete(gid);
      },
      rollback: async (gid) => {
        prepared.delete(gid);
      },
      close: async () => undefined,
    },
  };
  const server = new AgentRoundServer(
    'r1',
    () => participant as unknown as ReplicaParticipant,
    wiring,
    pino({ level: 'silent' }),
  );
  return {
    server,
    prepared,
    decided,
    ended,
    notLanded,
    participant,
    node: wiring.node,
    vote: (v: WireVote) => vote(v),
  };
}

/** Migrations whose prepare lands (the gid prepared in `on`) once `finish(on)` is called. */
function slowMigrations() {
  let land: (on: Map<string, PreparedGid>) => void = () => undefined;
  const migrations = {
    patienceMs: 600_000,
    prepare: (gid: string) =>
      new Promise<void>((resolve) => {
        land = (on) => {
          on.set(gid, { gid, preparedAt: '', ageSeconds: 0, kind: 'migration' });
          resolve();
        };
      }),
  } as unknown as AgentMigrations;
  return { migrations, finish: (on: Map<string, PreparedGid>) => land(on) };
}

describe('an agent serving two-phase rounds', () => {
  it('refuses a coordinator older than one it has seen', async () => {
    const { server } = world(async () => ({ ok: true, value: 'abort' }));
    expect(await server.handle('list', { epoch: 5, stream: 's' })).toMatchObject({ ok: true });
    expect(await server.handle('rollback', { epoch: 4, gid: GID })).toEqual({
      ok: false,
      error: 'deposed coordinator: epoch 4 is older than 5',
      deposed: true,
    });
  });

  it('refuses a request without an epoch, and keeps refusing older coordinators after it', async () => {
    const { server } = world(async () => ({ ok: true, value: 'abort' }));
    expect(await server.handle('list', { epoch: 5, stream: 's' })).toMatchObject({ ok: true });
    const bare = { gid: GID } as unknown as { epoch: number; gid: string };
    expect(await server.handle('rollback', bare)).toMatchObject({ ok: false });
    expect(await server.handle('rollback', { epoch: 4, gid: GID })).toMatchObject({
      ok: false,
      deposed: true,
    });
  });

  it('rolls back a PREPARE that finishes after its round was rolled back', async () => {
    const { server, prepared, decided, vote } = world(async () => ({ ok: true, value: 'abort' }));
    const answered = server.handle('prepare', { epoch: 1, request: REQUEST });
    // The coordinator stopped waiting: its rollback comes before the PREPARE is done.
    expect(await server.handle('rollback', { epoch: 1, gid: GID })).toMatchObject({ ok: true });
    vote({ vote: 'yes' });
    expect(await answered).toMatchObject({ ok: true, value: { vote: 'yes' }, at: 6 });
    expect(prepared.size).toBe(0);
    expect(decided).toEqual([`${GID} rolled-back`]);
  });

  it('tells the participant a round ended, and refuses its prepare when the rollback overtook it', async () => {
    const { server, ended, node } = world(async () => ({ ok: true, value: 'abort' }));
    // The round aborted while its prepare waited parked at the applier's gate: dropped there
    // before ROLLBACK PREPARED runs (which may hang on the replica the round gave up on).
    let endedAtRollback: string[] = [];
    node.rollback = async () => {
      endedAtRollback = [...ended];
    };
    expect(await server.handle('rollback', { epoch: 1, gid: GID })).toMatchObject({ ok: true });
    expect(endedAtRollback).toEqual([GID]);
    // Its prepare arrives after the rollback: answered no at once, never parked for the gate.
    expect(await server.handle('prepare', { epoch: 1, request: REQUEST })).toMatchObject({
      ok: true,
      value: { vote: 'no', reason: expect.stringContaining(GID) },
      at: 6,
    });
  });

  it('answers alive while a migration prepares, and rolls back one that finishes after its round', async () => {
    const { migrations, finish } = slowMigrations();
    const { server, prepared } = world(async () => ({ ok: true, value: 'abort' }), migrations);
    const answered = server.handle('migrate', { epoch: 1, gid: MIGRATION });
    expect(await server.handle('alive', { epoch: 1, gid: MIGRATION })).toMatchObject({
      ok: true,
      value: { migration: 'preparing' },
    });
    expect(await server.handle('alive', { epoch: 1, gid: 'other' })).toMatchObject({
      value: { migration: 'none' },
    });
    // Thawed: the rollback the coordinator sent the refusing replica comes before the prepare is done.
    expect(await server.handle('rollback', { epoch: 1, gid: MIGRATION })).toMatchObject({
      ok: true,
    });
    finish(prepared);
    // Rolled back: the coordinator must count it as a failed prepare, never as prepared.
    expect(await answered).toMatchObject({ ok: false, error: expect.stringContaining(MIGRATION) });
    expect(prepared.size).toBe(0);
    // Rolled back here: nothing of it is left to report as prepared.
    expect(await server.handle('alive', { epoch: 1, gid: MIGRATION })).toMatchObject({
      value: { migration: 'none' },
    });
  });

  it('rolls back a late migration whose round ended, even when that rollback found nothing or failed', async () => {
    // Thawed: the coordinator's one rollback and the prepare's last step run side by side.
    // ROLLBACK PREPARED ran before PREPARE TRANSACTION was visible: 42704 (nothing to do), or
    // 55000 "is busy" / a broken phase-two session (an error); its answer comes in after the prepare's.
    for (const rollbackEnds of ['nothing-prepared', 'error'] as const) {
      const { migrations, finish } = slowMigrations();
      const { server, prepared, node } = world(
        async () => ({ ok: true, value: 'abort' }),
        migrations,
      );
      const answered = server.handle('migrate', { epoch: 1, gid: MIGRATION });
      let answer: () => void = () => undefined;
      let calls = 0;
      node.rollback = async (gid: string) => {
        calls++;
        if (calls > 1) {
          prepared.delete(gid);
          return;
        }
        await new Promise<void>((resolve, reject) => {
          answer = () => (rollbackEnds === 'error' ? reject(new Error('busy')) : resolve());
        });
      };
      const rolledBack = server.handle('rollback', { epoch: 1, gid: MIGRATION }).catch(() => null);
      finish(prepared);
      await answered;
      answer();
      await rolledBack;
      // Nothing of the ended round may stay prepared (it would hold the table for patienceMs).
      expect({ rollbackEnds, prepared: [...prepared.keys()] }).toEqual({
        rollbackEnds,
        prepared: [],
      });
    }
  });

  it('answers a commit of a gid rolled back outside lockstep as not landed, never as done', async () => {
    const { server, node, notLanded } = world(async () => ({ ok: true, value: 'abort' }));
    node.commit = async (gid) => {
      throw new NotLandedError('r1', gid, 'stream');
    };
    expect(await server.handle('commit', { epoch: 1, gid: GID })).toMatchObject({
      ok: false,
      notLanded: 'stream',
    });
    // Its applier is told, for its status error and its counter.
    expect(notLanded).toEqual([GID]);
  });

  it('finishes a gid a crash left prepared by the coordinator answer, and keeps it while none comes', async () => {
    const lost = world(async () => {
      throw new Error('no answer');
    });
    lost.prepared.set(GID, { gid: GID, preparedAt: '', ageSeconds: 99, kind: 'stream' });
    expect(await lost.server.resolveInDoubt()).toBe(1);
    expect(lost.prepared.has(GID)).toBe(true);
    const told = world(async () => ({ ok: true, value: 'commit' }));
    told.prepared.set(GID, { gid: GID, preparedAt: '', ageSeconds: 99, kind: 'stream' });
    expect(await told.server.resolveInDoubt()).toBe(0);
    expect(told.prepared.size).toBe(0);
    // An applier parked at that round's gate reads its position again.
    expect(told.participant.committedThrough).toBe(7);
    expect(told.participant.nudged).toBe(1);
  });
  it('tells the applier a gid recovery found rolled back outside lockstep, and resolves the rest', async () => {
    const { server, prepared, decided, notLanded, vote, node } = world(async () => ({
      ok: true,
      value: 'commit',
    }));
    const answered = server.handle('prepare', { epoch: 1, request: REQUEST });
    vote({ vote: 'yes' });
    await answered;
    prepared.set(GID, { gid: GID, preparedAt: '', ageSeconds: 99, kind: 'stream' });
    const other = 'lockstep_s_9_4e2';
    prepared.set(other, { gid: other, preparedAt: '', ageSeconds: 99, kind: 'stream' });
    // Rolled back by hand between the agent's list and its COMMIT PREPARED.
    node.commit = async (gid) => {
      if (gid === GID) throw new NotLandedError('r1', gid, 'stream');
      prepared.delete(gid);
    };
    const inDoubt = await server.resolveInDoubt().catch((error: Error) => error.name);
    // The applier waits for GID's decision: it must hear rolled-back, and the other gid still commits.
    expect({
      inDoubt,
      decided,
      notLanded,
      left: [...prepared.keys()].filter((g) => g === other),
    }).toEqual({
      inDoubt: 0,
      decided: [`${GID} rolled-back`],
      notLanded: [GID],
      left: [],
    });
  });
});
