import { describe, expect, it } from 'vitest';
import {
  applyRate,
  CLEAR_SCREEN,
  formatBytes,
  type WatchSample,
  watchFrame,
  watchLine,
  watchScreen,
} from '../../plugin/cli/watch-view.js';
import { lockstepStatus, replicaStatus } from '../support/status-sample.js';

const at = (seconds: number) => new Date(Date.UTC(2025, 0, 1, 12, 0, seconds));

function sample(seconds: number, euVersion: number, fields = {}): WatchSample {
  return {
    at: at(seconds),
    status: lockstepStatus(
      [
        replicaStatus('eu', { version: euVersion }),
        replicaStatus('us', {
          state: 'halted',
          version: 4,
          lagVersions: 6,
          lagBytes: 3 * 1024 * 1024,
          lagSeconds: 12.5,
          error: '[us] cannot connect\n  fix: start it',
        }),
      ],
      fields,
    ),
  };
}

describe('status --watch view', () => {
  it('computes each replica’s apply rate from two samples', () => {
    const before = sample(0, 10);
    const now = sample(2, 30);
    expect(applyRate('eu', now, before)).toBe(10);
    expect(applyRate('us', now, before)).toBe(0);
    expect(applyRate('eu', now, null)).toBeNull();
    expect(applyRate('nobody', now, before)).toBeNull();
  });

  it('writes one summary line per refresh when not on a terminal', () => {
    const line = watchFrame(sample(2, 30), sample(0, 10), false);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.split('\n')).toHaveLength(2);
    expect(line).not.toContain('\x1b');
    const parts = line.trimEnd().split(' | ');
    expect(parts[0]).toBe('2025-01-01T12:00:02.000Z primary v10');
    expect(parts[1]).toBe('eu streaming v30 lag 0/0 B/0.0s 10.0 v/s');
    expect(parts[2]).toBe('us halted v4 lag 6/3.0 MB/12.5s 0.0 v/s');
    expect(parts.slice(3)).toEqual(['rounds 3/1', 'in-doubt 0']);
  });

  it('redraws the whole view in place on a terminal', () => {
    const frame = watchFrame(sample(2, 30), sample(0, 10), true);
    expect(frame.startsWith(CLEAR_SCREEN)).toBe(true);
    const lines = frame.slice(CLEAR_SCREEN.length).split('\n');
    const row = (name: string) => lines.find((l) => l.startsWith(`${name} `))?.split(/\s{2,}/);
    expect(lines.find((l) => l.startsWith('replica '))?.split(/\s{2,}/)).toEqual([
      'replica',
      'state',
      'version',
      'lag',
      'lag bytes',
      'lag s',
      'versions/s',
      'error',
    ]);
    expect(row('eu')).toEqual(['eu', 'streaming', '30', '0', '0 B', '0.0', '10.0']);
    expect(row('us')).toEqual([
      'us',
      'halted',
      '4',
      '6',
      '3.0 MB',
      '12.5',
      '0.0',
      '[us] cannot connect',
    ]);
    expect(lines).toContain('two-phase: 3 committed, 1 aborted');
    expect(lines).toContain('in-doubt: none');
  });

  it('shows the held round, in-doubt transactions and a pause', () => {
    const screen = watchScreen(
      sample(0, 10, {
        paused: true,
        pausedSince: '2025-01-01T11:00:00.000Z',
        twoPhase: {
          roundsCommitted: 3,
          roundsAborted: 2,
          held: { gid: 'g', from: 11, to: 12, attempts: 2, refusals: { us: 'no\nfix: x' } },
        },
        inDoubt: [{ node: 'eu', gid: 'lockstep_lockstep_11_2', preparedAt: '', ageSeconds: 7 }],
      }),
      null,
    ).split('\n');
    expect(screen[1]).toMatch(/ PAUSED since 2025-01-01T11:00:00.000Z$/);
    expect(screen).toContain('  held at version 11 after 2 refused attempt(s):');
    expect(screen).toContain('    us: no');
    expect(screen).toContain('in-doubt: 1');
    expect(screen).toContain('  eu: lockstep_lockstep_11_2 (prepared 7s ago)');
    expect(watchLine(sample(0, 10, { paused: true }), null)).toMatch(/ primary v10 paused \| /);
  });

  it('formats bytes in binary units', () => {
    expect([0, 1023, 1024, 1536 * 1024, null].map(formatBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.0 kB',
      '1.5 MB',
      '-',
    ]);
  });
});
