import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { errorJson } from '../../plugin/cli/cli-output.js';
import {
  ExitCode,
  exitCodeFor,
  exitCodeForProblems,
  exitCodeForStatus,
  UsageError,
} from '../../plugin/cli/exit-codes.js';
import { ConfigError } from '../../plugin/config/load-config.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { statusHealth } from '../../plugin/status/status-health.js';
import { lockstepStatus, replicaStatus, slotStatus } from '../support/status-sample.js';

const refused = new LockstepError({ node: 'primary', problem: 'a sidecar runs', fix: 'stop it' });
const unreachable = new LockstepError({
  node: 'eu',
  setting: 'connection',
  problem: 'cannot connect to postgres://x@127.0.0.1:1/app: connect ECONNREFUSED',
  fix: 'check that the server is running',
});

describe('exit codes', () => {
  it('maps each kind of failure to its code', () => {
    expect(exitCodeFor(new ConfigError('f.json', ['primary: got missing']))).toBe(ExitCode.usage);
    expect(exitCodeFor(new UsageError('give --lsn or --version'))).toBe(ExitCode.usage);
    expect(exitCodeFor(new CommanderError(1, 'commander.unknownOption', 'x'))).toBe(ExitCode.usage);
    expect(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '(help)'))).toBe(
      ExitCode.ok,
    );
    expect(exitCodeFor(unreachable)).toBe(ExitCode.unreachable);
    expect(exitCodeFor(refused)).toBe(ExitCode.problems);
    expect(exitCodeFor(new Error('anything else'))).toBe(ExitCode.problems);
  });

  it('sees a connection failure through raw driver errors and wrapping causes', () => {
    const refusedSocket = Object.assign(new Error('connect ECONNREFUSED'), {
      code: 'ECONNREFUSED',
    });
    const badPassword = Object.assign(new Error('password authentication failed'), {
      code: '28P01',
    });
    expect(exitCodeFor(refusedSocket)).toBe(ExitCode.unreachable);
    expect(exitCodeFor(badPassword)).toBe(ExitCode.unreachable);
    const wrapped = new LockstepError({
      node: 'eu',
      problem: 'cannot check the replica',
      fix: 'retry',
      cause: unreachable,
    });
    expect(exitCodeFor(wrapped)).toBe(ExitCode.unreachable);
    const sqlError = Object.assign(new Error('relation does not exist'), { code: '42P01' });
    expect(exitCodeFor(sqlError)).toBe(ExitCode.problems);
  });

  it('lets an unreachable node win over other problems of a report', () => {
    expect(exitCodeForProblems([])).toBe(ExitCode.ok);
    expect(exitCodeForProblems([refused])).toBe(ExitCode.problems);
    expect(exitCodeForProblems([refused, unreachable])).toBe(ExitCode.unreachable);
  });

  it('gives --json errors their node, problem, fix and exit code', () => {
    expect(errorJson(unreachable)).toEqual({
      error: {
        node: 'eu',
        table: null,
        setting: 'connection',
        problem: unreachable.problem,
        fix: unreachable.fix,
        code: 3,
      },
    });
    expect(errorJson(new ConfigError('f.json', ['nope: unknown key'])).error).toMatchObject({
      node: null,
      code: 2,
    });
  });
});

describe('status exit code', () => {
  const code = (status: ReturnType<typeof lockstepStatus>) =>
    exitCodeForStatus(statusHealth(status));

  it('is 0 while every replica streams, catches up or is paused', () => {
    const states = ['streaming', 'catching-up', 'paused', 'resyncing', 'unknown'];
    expect(code(lockstepStatus(states.map((state, i) => replicaStatus(`r${i}`, { state }))))).toBe(
      0,
    );
  });

  it('is 1 for a halted, stale or unresponsive replica', () => {
    for (const state of ['halted', 'stale', 'unresponsive']) {
      const status = lockstepStatus([replicaStatus('eu'), replicaStatus('us', { state })]);
      expect(statusHealth(status).troubled).toEqual([{ name: 'us', state }]);
      expect(code(status)).toBe(1);
    }
  });

  it('is 1 when the status reports a lost slot', () => {
    const status = { ...lockstepStatus([replicaStatus('eu')]), slot: slotStatus(true) };
    expect(statusHealth(status).slotLost).toBe(true);
    expect(code(status)).toBe(1);
    const kept = { ...status, slot: slotStatus(false) };
    expect(code(kept)).toBe(0);
  });

  it('is 3 when a node could not be reached, whatever else is wrong', () => {
    const status = lockstepStatus([
      replicaStatus('eu', { state: 'halted' }),
      replicaStatus('us', { state: 'halted', reachable: false }),
    ]);
    expect(statusHealth(status).unreachable).toEqual(['us']);
    expect(code(status)).toBe(3);
    const primaryDown = lockstepStatus([replicaStatus('eu')]);
    primaryDown.primary = { ...primaryDown.primary, reachable: false, error: 'cannot connect' };
    expect(code(primaryDown)).toBe(3);
  });
});
