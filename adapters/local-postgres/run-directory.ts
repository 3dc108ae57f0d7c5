import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { asServerUser } from './os-user.js';

/**
 * Every cluster of a test run lives under one run directory, named after the
 * process that owns it; each cluster directory records the pid that started
 * it. Whatever dies, the next sweep (vitest's global teardown, or the next
 * run) stops orphaned servers and removes their directories.
 */
const RUN_PREFIX = 'lockstep-run-';
const OWNER_FILE = 'owner.pid';

let ownRunDirectory: string | null = null;

/** The run directory: `LOCKSTEP_TEST_RUN_DIR` when the test runner set one, else one for this process. */
export function runDirectory(): string {
  const fromEnv = process.env.LOCKSTEP_TEST_RUN_DIR;
  if (fromEnv) {
    mkdirSync(fromEnv, { recursive: true, mode: 0o755 });
    return fromEnv;
  }
  if (!ownRunDirectory) {
    ownRunDirectory = createRunDirectory();
    const dir = ownRunDirectory;
    process.once('exit', () => sweepRunDirectory(dir, { removeAll: true }));
  }
  return ownRunDirectory;
}

/** Creates a fresh run directory for this process. */
export function createRunDirectory(): string {
  const dir = path.join(os.tmpdir(), `${RUN_PREFIX}${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** The file in a cluster directory naming the process that owns it. */
export function ownerFile(clusterDir: string): string {
  return path.join(clusterDir, OWNER_FILE);
}

/** Whether process `pid` runs (one of another user counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Stops a server by data directory, immediately; ignores a server that is not running. */
export function stopServerSync(pgCtl: string, dataDir: string): void {
  if (!existsSync(path.join(dataDir, 'postmaster.pid'))) return;
  const [cmd, args] = asServerUser(pgCtl, [
    '-D',
    dataDir,
    '-m',
    'immediate',
    '-w',
    '-t',
    '30',
    'stop',
  ]);
  const result = spawnSync(cmd, args, { stdio: 'ignore' });
  if (result.status !== 0) {
    // pg_ctl could not do it (binaries gone?): kill the postmaster by its pid file.
    try {
      const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
  }
}

/**
 * Stops and removes the clusters in a run directory whose owner is dead (all of
 * them with `removeAll`, which also removes the directory itself).
 */
export function sweepRunDirectory(dir: string, options: { removeAll?: boolean } = {}): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const clusterDir = path.join(dir, entry);
    const owner = ownerFile(clusterDir);
    if (!existsSync(owner)) continue;
    const pid = Number(readFileSync(owner, 'utf8'));
    if (!options.removeAll && isAlive(pid)) continue;
    const pgCtl = readFileSync(owner.replace(OWNER_FILE, 'pg_ctl.path'), 'utf8');
    stopServerSync(pgCtl, path.join(clusterDir, 'data'));
    rmSync(clusterDir, { recursive: true, force: true });
  }
  if (options.removeAll) rmSync(dir, { recursive: true, force: true });
}

/** Sweeps run directories left by dead processes (an interrupted earlier run). */
export function sweepStaleRunDirectories(): void {
  for (const entry of readdirSync(os.tmpdir())) {
    if (!entry.startsWith(RUN_PREFIX)) continue;
    const pid = Number(entry.slice(RUN_PREFIX.length).split('-')[0]);
    if (pid > 0 && !isAlive(pid))
      sweepRunDirectory(path.join(os.tmpdir(), entry), { removeAll: true });
  }
}
