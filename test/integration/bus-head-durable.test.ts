import { describe, expect, it } from 'vitest';
import { StatusStore } from '../../adapters/postgres/control/status-store.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { toLsn } from '../../plugin/protocol/lsn.js';
import { useAttached } from '../support/use-attached.js';

// The bus publisher records the stream's head before it confirms the slot to it;
// the slot's state can reach disk without a WAL flush, so the head must not ride
// on an asynchronous commit that a crash of the primary loses.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE quiet (id int PRIMARY KEY)',
});

async function recordedHead(): Promise<{ version: number; lsn: string } | undefined> {
  const [row] = await clusters.primary.query<{ version: string; lsn: string }>(
    "SELECT version::text, lsn::text FROM lockstep.streams WHERE stream = 'lockstep'",
  );
  return row && { version: Number(row.version), lsn: row.lsn };
}

describe('the head the bus publisher records', () => {
  it('survives a crash of the primary right after it is recorded, on a server that commits asynchronously', async () => {
    const { primary } = clusters;
    // Commits leave their WAL in shared buffers for up to 10 s unless flushed.
    await primary.query('ALTER SYSTEM SET synchronous_commit = off');
    await primary.query("ALTER SYSTEM SET wal_writer_delay = '10s'");
    await primary.query('SELECT pg_reload_conf()');
    const config = loadConfig(clusters.configFile);
    const status = new StatusStore(config.primary, config.slot);
    const before = await recordedHead();
    const head = { version: (before?.version ?? 0) + 7, lsn: toLsn('7/7'), commitTime: null };
    try {
      await status.write([], head, { durable: true });
    } finally {
      await status.close();
    }
    await primary.stopServer('immediate');
    await primary.startServer();
    expect(await recordedHead()).toEqual({ version: head.version, lsn: '7/7' });
  });
});
