import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A sidecar frozen (SIGSTOP, a VM pause) between its status write's UPDATE of the stream row and
// its COMMIT keeps that row locked; the successor raises the epoch on that row before it may act.
const clusters = useAttached({ replicas: 1, schema: 'CREATE TABLE t (id int PRIMARY KEY)' });

interface Session {
  pid: number;
  state: string;
  waiting: boolean;
  holdsStreamRow: boolean;
}

/** The frozen process's status session: what it does and whether its transaction wrote the stream row. */
async function statusSession(pid?: number): Promise<Session | undefined> {
  const rows = await clusters.primary.query<Session>(
    `SELECT a.pid, a.state, a.wait_event_type = 'Lock' AS waiting,
            EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                      AND l.relation = 'lockstep.streams'::regclass AND l.mode = 'RowExclusiveLock')
              AND a.backend_xid IS NOT NULL AS "holdsStreamRow"
       FROM pg_stat_activity a WHERE a.application_name = 'lockstep-status'`,
  );
  return rows.find((r) => pid === undefined || r.pid === pid);
}

describe('a sidecar frozen inside its status write', () => {
  it('does not keep the stream row from its successor: the server ends the idle transaction and the successor takes over', async () => {
    const frozen = new LockstepProcess(['run', '--config', clusters.configFile]);
    let successor: LockstepProcess | null = null;
    const blocker = new pg.Client({ connectionString: clusters.primary.url });
    try {
      await eventually(async () => !!frozen.logEvent('sidecar-active'), 'the first sidecar active');
      // Hold the stream row so the next status write waits on it, then freeze the sidecar there:
      // once the row is free its UPDATE completes and the transaction stays open, its client frozen.
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM lockstep.streams FOR UPDATE');
      await eventually(async () => (await statusSession())?.waiting === true, 'the write waiting');
      frozen.kill('SIGSTOP');
      await blocker.query('COMMIT');
      await eventually(async () => {
        const s = await statusSession();
        return s?.state === 'idle in transaction' && s.holdsStreamRow;
      }, 'the frozen write holding the row');
      const frozenPid = (await statusSession())?.pid;
      // Its lock session and walsender end (a DBA, timeouts) while it is frozen.
      await clusters.primary.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'lockstep-coordinator'`,
      );
      await clusters.primary.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'lockstep' AND active_pid IS NOT NULL",
      );
      const next = new LockstepProcess(['run', '--config', clusters.configFile]);
      successor = next;
      await eventually(async () => !!next.logEvent('sidecar-active'), 'the successor active');
      // The frozen transaction was ended by the server, not left to hold the row.
      expect(frozenPid).toBeDefined();
      expect(await statusSession(frozenPid)).toBeUndefined();
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
      await blocker.end().catch(() => undefined);
      frozen.kill('SIGCONT');
      frozen.kill('SIGKILL');
      successor?.kill('SIGTERM');
      await successor?.exited;
    }
  });
});
