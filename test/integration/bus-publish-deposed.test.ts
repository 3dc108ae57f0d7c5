import { beforeAll, describe, expect, it } from 'vitest';
import { compareLsn, type Lsn } from '../../plugin/protocol/lsn.js';
import { eventually } from '../support/compare-nodes.js';
import { deposeCoordinator } from '../support/depose-coordinator.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { expectContiguous, readBusMessages } from '../support/nats-packets.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// A publisher that lost the coordinator lock while it lived on, and a successor that publishes after it.
const STREAM = 'LOCKSTEP_LOCKSTEP';
const nats = useNatsCluster();
const clusters = useAttached({ replicas: 1, schema: 'CREATE TABLE t (id int PRIMARY KEY)' });
let configFile = '';
let nextId = 1;

beforeAll(() => {
  configFile = writeConfig(clusters.primary, clusters.replicas, {
    bus: { url: nats.cluster.url, replicas: 3 },
  }).file;
});

async function insert(transactions: number): Promise<void> {
  for (let i = 0; i < transactions; i++)
    await clusters.primary.query(`INSERT INTO t VALUES (${nextId++})`);
}

/** Waits until the bus holds every id inserted so far, once, in order; the last packet on it. */
async function allOnBus(): Promise<{ version: number; lsn: Lsn }> {
  await eventually(async () => {
    const ids = expectContiguous(await readBusMessages(nats.cluster.url, STREAM), 't');
    return ids.length >= nextId - 1;
  }, 'every row on the bus');
  const messages = await readBusMessages(nats.cluster.url, STREAM);
  expect(expectContiguous(messages, 't')).toEqual(
    Array.from({ length: nextId - 1 }, (_, i) => i + 1),
  );
  const last = messages.at(-1);
  return { version: last?.position.version ?? 0, lsn: last?.part.header.lsn ?? ('0/0' as Lsn) };
}

async function head(): Promise<{ version: number; lsn: Lsn }> {
  const [row] = await clusters.primary.query<{ version: string; lsn: Lsn }>(
    'SELECT version::text, lsn::text FROM lockstep.streams',
  );
  return { version: Number(row?.version), lsn: row?.lsn ?? ('0/0' as Lsn) };
}

describe('a publisher deposed while it lives on', () => {
  it('does not write its stale head over its successor’s when it stops', async () => {
    const deposed = new LockstepProcess(['run', '--config', configFile]);
    let successor: LockstepProcess | null = null;
    try {
      await eventually(async () => !!deposed.logEvent('bus-publishing'), 'publishing');
      await insert(5);
      const first = await allOnBus();
      await eventually(async () => (await head()).version === first.version, 'its head recorded');
      const lock = await deposeCoordinator(clusters.primary);
      await eventually(async () => !!deposed.logEvent('lock-lost'), 'the lock loss noticed');
      await eventually(async () => deposed.events('standby').length > 0, 'standing by');
      // Paused while the test holds the lock: it cannot take it back before the successor.
      deposed.kill('SIGSTOP');
      const next = new LockstepProcess(['run', '--config', configFile]);
      successor = next;
      await eventually(async () => !!next.logEvent('standby'), 'the successor standing by');
      await lock.end();
      await eventually(async () => !!next.logEvent('bus-publishing'), 'the successor publishing');
      await insert(5);
      const last = await allOnBus();
      await eventually(async () => (await head()).version === last.version, 'the successor’s head');
      const recorded = await head();
      deposed.kill('SIGTERM');
      deposed.kill('SIGCONT');
      await deposed.exited;
      const after = await head();
      expect(after.version).toBe(recorded.version);
      // The head is one packet: its LSN must not go back to the deposed one's packet 5.
      expect(compareLsn(after.lsn, recorded.lsn)).toBeGreaterThanOrEqual(0);
    } finally {
      deposed.kill('SIGCONT');
      deposed.kill('SIGKILL');
      successor?.kill('SIGTERM');
      await successor?.exited;
    }
  });

  it('paused with messages in flight while a successor takes over, stores none of them after the successor’s', async () => {
    const paused = new LockstepProcess(['run', '--config', configFile]);
    let successor: LockstepProcess | null = null;
    try {
      await eventually(async () => !!paused.logEvent('bus-publishing'), 'publishing');
      const writes = insert(400);
      await eventually(async () => nextId > 200, 'writes under way');
      paused.kill('SIGSTOP');
      await writes;
      // Its lock session and walsender end (a DBA, timeouts) while the process is frozen.
      await clusters.primary.query(
        `SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'lockstep-coordinator'`,
      );
      await clusters.primary.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'lockstep' AND active_pid IS NOT NULL",
      );
      const next = new LockstepProcess(['run', '--config', configFile]);
      successor = next;
      await eventually(async () => !!next.logEvent('bus-publishing'), 'the successor publishing');
      await allOnBus();
      // Thawed: whatever it still had to send names the old run's messages and must be refused.
      paused.kill('SIGCONT');
      await eventually(async () => !!paused.logEvent('lock-lost'), 'the lock loss noticed');
      await insert(50);
      const last = await allOnBus();
      await eventually(async () => (await head()).version === last.version, 'the successor’s head');
      paused.kill('SIGTERM');
      await paused.exited;
      // The head is the bus's last packet (or an idle point after it), never a packet the paused one knew.
      expect(compareLsn((await head()).lsn, last.lsn)).toBeGreaterThanOrEqual(0);
    } finally {
      paused.kill('SIGCONT');
      paused.kill('SIGKILL');
      successor?.kill('SIGTERM');
      await successor?.exited;
    }
  });
});
