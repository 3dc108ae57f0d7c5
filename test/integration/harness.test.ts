import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sweepRunDirectory } from '../../adapters/local-postgres/run-directory.js';
import { startClusters } from '../harness/clusters.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the fixture in a child process and reads its cluster's data dir and postmaster pid. */
async function startChild(): Promise<{
  child: ReturnType<typeof spawn>;
  dir: string;
  pid: number;
}> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/integration/fixtures/start-cluster-and-wait.ts'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] as string);
    });
    child.once('exit', (code) => reject(new Error(`fixture exited with ${code} before starting`)));
  });
  const { dir, pid } = JSON.parse(line) as { dir: string; pid: number };
  return { child, dir, pid };
}

describe('test harness', () => {
  it('starts independent primary and replica clusters with role settings, and removes them', async () => {
    const set = await startClusters({ replicas: 2 });
    try {
      const ports = new Set(set.all.map((c) => c.port));
      expect(ports.size).toBe(3);
      const setting = async (i: number, name: string) =>
        (await set.all[i]?.query<{ v: string }>(`SELECT current_setting($1) AS v`, [name]))?.[0]?.v;
      expect(await setting(0, 'wal_level')).toBe('logical');
      expect(Number(await setting(0, 'max_replication_slots'))).toBeGreaterThanOrEqual(10);
      expect(Number(await setting(0, 'max_wal_senders'))).toBeGreaterThanOrEqual(10);
      for (const i of [1, 2]) expect(await setting(i, 'max_prepared_transactions')).toBe('64');
      // Separate clusters: a table on one is not on another.
      await set.replicas[0]?.query('CREATE TABLE only_here (id int)');
      await expect(set.replicas[1]?.query('SELECT * FROM only_here')).rejects.toThrow(
        /does not exist/,
      );
      // Stop and start keeps the data (what replica-down tests rely on).
      await set.replicas[0]?.stopServer();
      await set.replicas[0]?.startServer();
      expect(await set.replicas[0]?.query('SELECT count(*) FROM only_here')).toEqual([
        { count: '0' },
      ]);
    } finally {
      const dirs = await Promise.all(
        set.all.map(
          async (c) =>
            (await c.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`))[0]?.d,
        ),
      );
      await set.destroy();
      for (const dir of dirs) expect(existsSync(dir as string)).toBe(false);
    }
  });

  it.each(['SIGINT', 'SIGTERM'] as const)(
    'leaves no server or directory behind when interrupted with %s',
    async (signal) => {
      const { child, dir, pid } = await startChild();
      expect(alive(pid)).toBe(true);
      child.kill(signal);
      await waitFor(
        () => !alive(pid) && !existsSync(path.dirname(dir)),
        'server and directory to be gone',
      );
    },
  );

  it('sweeps the clusters of a process killed with SIGKILL', async () => {
    const { child, dir, pid } = await startChild();
    child.kill('SIGKILL');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, 'child to die');
    expect(alive(pid)).toBe(true); // orphaned: nobody stopped it yet
    sweepRunDirectory(path.dirname(path.dirname(dir)));
    await waitFor(() => !alive(pid), 'orphaned server to stop');
    expect(existsSync(path.dirname(dir))).toBe(false);
  });
});
