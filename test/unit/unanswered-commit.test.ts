import { describe, expect, it } from 'vitest';
import { namedNodeLoss } from '../../plugin/cli/cli-output.js';
import { ExitCode, exitCodeFor } from '../../plugin/cli/exit-codes.js';
import type { LockstepConfig } from '../../plugin/config/config-schema.js';
import { recoverPrepared } from '../../plugin/coordinator/recover-prepared.js';
import { runRecovery } from '../../plugin/coordinator/run-recovery.js';
import { barrierUnanswered } from '../../plugin/migrate/unanswered-node.js';
import type { DecisionStore } from '../../plugin/ports/decision-store.js';
import { stampFailedNode } from '../../plugin/ports/failed-node.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { PhaseTwoNode } from '../../plugin/ports/phase-two-node.js';
import type { StreamLockHolder } from '../../plugin/ports/stream-lock-holder.js';

/** What runRecovery reads of the configuration. */
const config = {
  slot: 's',
  twoPhase: { recoveryIntervalMs: 1000 },
} as unknown as LockstepConfig;

const timedOut = () => new Error('Query read timeout');

const lock = (tryAcquire: () => Promise<boolean>): StreamLockHolder => ({
  tryAcquire,
  held: true,
  epoch: 1,
  onLost: () => undefined,
  release: async () => undefined,
});

const decisionLog = (decide: DecisionStore['decide']): DecisionStore => ({
  decide,
  read: async () => new Map(),
  lastRound: async () => 0,
  prune: async () => 0,
  close: async () => undefined,
});

const gid = 'lockstep_s_m1_1';
const node = (name: string, rollback: PhaseTwoNode['rollback']): PhaseTwoNode => ({
  node: name,
  list: async () => [{ gid, kind: 'migration', ageSeconds: 5, preparedAt: '2026-01-01T00:00:00Z' }],
  commit: async () => undefined,
  rollback,
  close: async () => undefined,
});

describe('a COMMIT on a live primary that does not return (SyncRep)', () => {
  it('names the synchronous standby in the barrier error, still exit 3 and recover first', () => {
    const error = barrierUnanswered(gid, 3000, timedOut());
    expect(error.node).toBe('primary');
    expect(error.fix).toContain("pg_stat_activity.wait_event = 'SyncRep'");
    expect(error.fix).toContain('synchronous_standby_names');
    expect(error.fix).toMatch(/run lockstep recover .*, then run this again$/);
    expect(exitCodeFor(error)).toBe(ExitCode.unreachable);
  });

  it('recover: a coordinator lock whose epoch write does not return is named (exit 3)', async () => {
    const error = await runRecovery(config, {
      streamLock: (purpose) =>
        lock(async () => {
          if (purpose === 'coordinator') throw timedOut();
          return true;
        }),
      decisionLog: () => decisionLog(async (_, d) => d),
      phaseTwoNodes: () => new Map(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockstepError);
    expect((error as LockstepError).node).toBe('primary');
    expect((error as LockstepError).problem).toMatch(/^taking the coordinator lock of stream/);
    expect((error as LockstepError).fix).toContain('SyncRep');
    expect(exitCodeFor(error)).toBe(ExitCode.unreachable);
  });

  it('recover: an abort decision whose write does not return is named (exit 3)', async () => {
    const error = await runRecovery(config, {
      streamLock: () => lock(async () => true),
      decisionLog: () => decisionLog(() => Promise.reject(timedOut())),
      phaseTwoNodes: () => new Map([['primary', node('primary', async () => undefined)]]),
    }).catch((e: unknown) => e);
    expect((error as LockstepError).problem).toMatch(/decision log .*recording an abort/);
    expect(exitCodeFor(error)).toBe(ExitCode.unreachable);
  });

  it('recover: a ROLLBACK PREPARED that does not return fails the node as unreachable', async () => {
    const report = await recoverPrepared(
      's',
      [node('primary', () => Promise.reject(timedOut()))],
      decisionLog(async (_, d) => d),
    );
    expect(report.failed).toEqual([
      { node: 'primary', error: expect.stringContaining('SyncRep'), unreachable: true },
    ]);
  });
});

describe('a raw pg error no step named', () => {
  it.each(['Query read timeout', 'Connection terminated unexpectedly'])(
    '"%s" is unreachable (exit 3) and printed with a fix',
    (message) => {
      const named = namedNodeLoss(new Error(message));
      expect(named).toBeInstanceOf(LockstepError);
      expect((named as LockstepError).message).toContain(message);
      expect((named as LockstepError).fix).toContain('lockstep status');
      expect(exitCodeFor(new Error(message))).toBe(ExitCode.unreachable);
    },
  );

  it('names the node its connection stamped on the error', () => {
    const named = namedNodeLoss(stampFailedNode(new Error('Query read timeout'), 'eu'));
    expect(named).toMatchObject({ node: 'eu', setting: 'connection' });
    expect(exitCodeFor(named)).toBe(ExitCode.unreachable);
  });

  it('says the node is unknown when nothing stamped it', () => {
    expect(namedNodeLoss(new Error('Query read timeout'))).toMatchObject({
      node: 'unknown',
      setting: 'connection',
    });
  });

  it('leaves other errors as they are', () => {
    const other = new Error('relation "x" does not exist');
    expect(namedNodeLoss(other)).toBe(other);
    expect(exitCodeFor(other)).toBe(ExitCode.problems);
  });
});
