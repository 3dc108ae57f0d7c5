import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import {
  endCoordinatorSessions,
  freezeHoldingStreamRow,
  sessionEnded,
} from '../support/frozen-session.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A sidecar frozen (SIGSTOP, a VM pause) between its status write's UPDATE of the stream row and
// its COMMIT keeps that row locked; the successor raises the epoch on that row before it may act.
const clusters = useAttached({ replicas: 1, schema: 'CREATE TABLE t (id int PRIMARY KEY)' });

describe('a sidecar frozen inside its status write', () => {
  it('does not keep the stream row from its successor: the server ends the idle transaction and the successor takes over', async () => {
    const frozen = new LockstepProcess(['run', '--config', clusters.configFile]);
    let successor: LockstepProcess | null = null;
    try {
      await eventually(async () => !!frozen.logEvent('sidecar-active'), 'the first sidecar active');
      // The next status write waits on the row, then completes with its transaction left open.
      const frozenPid = await freezeHoldingStreamRow(clusters.primary, frozen, 'lockstep-status');
      // Its lock session and walsender end (a DBA, timeouts) while it is frozen.
      await endCoordinatorSessions(clusters.primary);
      const next = new LockstepProcess(['run', '--config', clusters.configFile]);
      successor = next;
      await eventually(async () => !!next.logEvent('sidecar-active'), 'the successor active');
      // The frozen transaction was ended by the server, not left to hold the row.
      expect(frozenPid).toBeDefined();
      await sessionEnded(clusters.primary, 'lockstep-status', frozenPid);
      await clusters.primary.query('INSERT INTO t SELECT generate_series(1, 100)');
      const replica = clusters.replicas[0];
      await eventually(async () => {
        const [r] = (await replica?.query<{ n: number }>('SELECT count(*)::int AS n FROM t')) ?? [];
        return r?.n === 100;
      }, 'the successor applying');
      // Thawed, the deposed one finds its sessions gone and stands by or exits: nothing doubled.
      frozen.kill('SIGCONT');
      await eventually(async () => !!frozen.logEvent('lock-lost'), 'the lock loss noticed');
      await clusters.primary.query('INSERT INTO t SELECT generate_series(101, 150)');
      await eventually(async () => {
        const [r] = (await replica?.query<{ n: number }>('SELECT count(*)::int AS n FROM t')) ?? [];
        return r?.n === 150;
      }, 'every row once');
    } finally {
      frozen.kill('SIGCONT');
      frozen.kill('SIGKILL');
      successor?.kill('SIGTERM');
      await successor?.exited;
    }
  });
});
