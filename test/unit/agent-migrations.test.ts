import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AgentMigrations } from '../../plugin/agent/agent-migrations.js';
import type {
  MigrationNodeSession,
  MigrationPrepare,
} from '../../plugin/ports/migration-session.js';
import {
  encodeMigrationWork,
  type Lsn,
  MIGRATION_WORK,
  type PacketPart,
} from '../../plugin/protocol/index.js';

const GID = 'lockstep_s_m1700000000000_1';

/** A replica that has applied the stream far past the barrier; its prepares fail while `refuse` says so. */
function replica(applied: () => Lsn = () => '0/FFFF' as Lsn, lockTimeoutMs = 1_000) {
  const ran: string[] = [];
  const state = { refuse: true };
  const session: MigrationNodeSession = {
    node: 'r1',
    appliedLsn: async () => applied(),
    async prepare(options: MigrationPrepare) {
      const statements: string[] = [];
      await options.step({ query: async (text: string) => statements.push(text) } as never);
      ran.push(...statements);
      if (state.refuse) throw new Error('could not create unique index "events_note"');
    },
    commitBarrier: async () => '0/0' as Lsn,
    history: async () => [],
    replicaHistory: async () => ({ history: [], copiedAt: null }),
  };
  const migrations = new AgentMigrations(
    'r1',
    session,
    { lockTimeoutMs, adoptTables: [], patienceMs: 60_000 },
    pino({ level: 'silent' }),
  );
  const barrier: PacketPart = {
    header: { version: 5, lsn: '0/100' as Lsn, xid: 9, commitTime: '' },
    index: 0,
    changes: [
      {
        kind: 'message',
        prefix: MIGRATION_WORK,
        content: encodeMigrationWork({
          gid: GID,
          sql: 'CREATE UNIQUE INDEX i ON t (c)',
          history: null,
        }),
      },
    ],
    final: { phase: 'one' },
  };
  migrations.seen(barrier);
  return { migrations, ran, state };
}

describe("an agent's migrations over the bus", () => {
  it('runs a vouched migration once: a replayed request for a round that ended runs nothing', async () => {
    const { migrations, ran, state } = replica();
    // The round's own request: the replica votes no (no rollback is sent to a refusing node).
    await expect(migrations.prepare(GID)).rejects.toThrow(/events_note/);
    expect(ran).toEqual(['CREATE UNIQUE INDEX i ON t (c)']);
    // Later, what made it refuse is gone, and the same request comes again (a replay on NATS).
    state.refuse = false;
    await expect(migrations.prepare(GID)).rejects.toThrow(/not in the stream this agent read/);
    expect(ran).toEqual(['CREATE UNIQUE INDEX i ON t (c)']);
  });

  it('waits for the replica to apply through the barrier packet when asked right after its barrier message', async () => {
    // The barrier's message is at 0/F0, its packet commits at 0/100: an application commit in between was applied.
    const positions = ['0/F8', '0/F8', '0/100'] as Lsn[];
    const { migrations, ran, state } = replica(() => positions.shift() ?? ('0/100' as Lsn));
    state.refuse = false;
    await migrations.prepare(GID);
    expect(ran).toEqual(['CREATE UNIQUE INDEX i ON t (c)']);
    expect(positions).toEqual([]);
  });

  it('refuses once the vote time ran out with the replica still short of the barrier', async () => {
    const { migrations, ran } = replica(() => '0/F8' as Lsn, 120);
    await expect(migrations.prepare(GID)).rejects.toThrow(
      /has not applied the stream up to migration/,
    );
    expect(ran).toEqual([]);
  });
});
