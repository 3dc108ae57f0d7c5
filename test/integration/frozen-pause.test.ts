import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// `lockstep pause` locks the stream row (SELECT … FOR UPDATE) until its COMMIT; frozen (SIGSTOP, a
// VM pause) in between, it kept the row from a sidecar, which raises its epoch on that row first.
const clusters = useAttached({ replicas: 1, schema: 'CREATE TABLE t (id int PRIMARY KEY)' });

interface Session {
  pid: number;
  state: string;
  waiting: boolean;
  holdsRow: boolean;
}

/** The pause command's session (no sidecar runs yet: it is lockstep's only plain session). */
async function pauseSession(pid?: number): Promise<Session | undefined> {
  const rows = await clusters.primary.query<Session>(
    `SELECT pid, state, wait_event_type = 'Lock' AS waiting, backend_xid IS NOT NULL AS "holdsRow"
       FROM pg_stat_activity WHERE application_name = 'lockstep'`,
  );
  return rows.find((r) => pid === undefined || r.pid === pid);
}

const rowsOnReplica = async () =>
  (await clusters.replicas[0]?.query<{ n: number }>('SELECT count(*)::int AS n FROM t'))?.[0]?.n;

describe('a pause frozen while it holds the stream row', () => {
  it('does not keep a sidecar from starting: the server ends the idle transaction, nothing is paused', async () => {
    const blocker = new pg.Client({ connectionString: clusters.primary.url });
    const pause = new LockstepProcess(['pause', '--config', clusters.configFile]);
    let sidecar: LockstepProcess | null = null;
    try {
      // Hold the row so the pause waits on it, then freeze it there: once the row is free its
      // SELECT … FOR UPDATE is granted and its transaction stays open, its client frozen.
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM lockstep.streams FOR UPDATE');
      await eventually(async () => (await pauseSession())?.waiting === true, 'the pause waiting');
      pause.kill('SIGSTOP');
      await blocker.query('COMMIT');
      await eventually(async () => {
        const s = await pauseSession();
        return s?.state === 'idle in transaction' && s.holdsRow;
      }, 'the frozen pause holding the row');
      const frozenPid = (await pauseSession())?.pid;

      const run = new LockstepProcess(['run', '--config', clusters.configFile]);
      sidecar = run;
      await eventually(async () => !!run.logEvent('sidecar-active'), 'the sidecar active');
      expect(frozenPid).toBeDefined();
      expect(await pauseSession(frozenPid)).toBeUndefined();
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
      await blocker.end().catch(() => undefined);
      pause.kill('SIGCONT');
      pause.kill('SIGKILL');
      sidecar?.kill('SIGTERM');
      await sidecar?.exited;
    }
  });
});
