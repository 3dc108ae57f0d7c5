import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { freezeHoldingStreamRow, sessionEnded } from '../support/frozen-session.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// `lockstep pause` locks the stream row (SELECT … FOR UPDATE) until its COMMIT; frozen (SIGSTOP, a
// VM pause) in between, it kept the row from a sidecar, which raises its epoch on that row first.
const clusters = useAttached({ replicas: 1, schema: 'CREATE TABLE t (id int PRIMARY KEY)' });

const rowsOnReplica = async () =>
  (await clusters.replicas[0]?.query<{ n: number }>('SELECT count(*)::int AS n FROM t'))?.[0]?.n;

describe('a pause frozen while it holds the stream row', () => {
  it('does not keep a sidecar from starting: the server ends the idle transaction, nothing is paused', async () => {
    const pause = new LockstepProcess(['pause', '--config', clusters.configFile]);
    let sidecar: LockstepProcess | null = null;
    try {
      // Its SELECT … FOR UPDATE waits on the row, then is granted with its transaction left open
      // (no sidecar runs yet: the pause's is lockstep's only plain session).
      const frozenPid = await freezeHoldingStreamRow(clusters.primary, pause, 'lockstep');

      const run = new LockstepProcess(['run', '--config', clusters.configFile]);
      sidecar = run;
      await eventually(async () => !!run.logEvent('sidecar-active'), 'the sidecar active');
      expect(frozenPid).toBeDefined();
      await sessionEnded(clusters.primary, 'lockstep', frozenPid);
      await clusters.primary.query('INSERT INTO t SELECT generate_series(1, 100)');
      await eventually(async () => (await rowsOnReplica()) === 100, 'the sidecar applying');

      // Thawed, the pause finds its transaction gone: it fails, and the stream is not paused.
      pause.kill('SIGCONT');
      expect(await pause.exited).not.toBe(0);
      const [row] = await clusters.primary.query<{ paused: boolean }>(
        'SELECT paused_at IS NOT NULL AS paused FROM lockstep.streams',
      );
      expect(row?.paused).toBe(false);
    } finally {
      pause.kill('SIGCONT');
      pause.kill('SIGKILL');
      sidecar?.kill('SIGTERM');
      await sidecar?.exited;
    }
  });
});
