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

  it('keeps the newer head: a stale write of the same version at an earlier LSN does not move it back', async () => {
    // A deposed publisher (resumed by SIGCONT) may still record the head it knew; a restart
    // resumes from the head, and one below the slot's confirmed point refuses to publish.
    const config = loadConfig(clusters.configFile);
    const status = new StatusStore(config.primary, config.slot);
    const version = ((await recordedHead())?.version ?? 0) + 3;
    const write = (v: number, lsn: string) =>
      status.write([], { version: v, lsn: toLsn(lsn), commitTime: null }, { durable: true });
    try {
      // The packet, then its idle point (same version, later LSN): the head moves up.
      await write(version, '5/10');
      await write(version, '5/90');
      expect(await recordedHead()).toEqual({ version, lsn: '5/90' });
      // The deposed publisher's head: the same packet at its earlier point.
      await write(version, '5/10');
      expect(await recordedHead()).toEqual({ version, lsn: '5/90' });
      await write(version - 1, '5/5');
      expect(await recordedHead()).toEqual({ version, lsn: '5/90' });
      await write(version + 1, '5/A0');
      expect(await recordedHead()).toEqual({ version: version + 1, lsn: '5/A0' });
    } finally {
      await status.close();
    }
  });
});
