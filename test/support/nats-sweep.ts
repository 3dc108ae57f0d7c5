import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Each NATS test cluster lives in a directory of the run directory with this prefix. */
export const NATS_DIR_PREFIX = 'nats-';

/** The pid file nats-server writes in its node directory (`pid_file`). */
export const NATS_PID_FILE = 'nats.pid';

/** Kills a nats-server by its pid file, only if that process still runs from `nodeDir`. */
export function killNatsNode(nodeDir: string): void {
  const file = path.join(nodeDir, NATS_PID_FILE);
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!(pid > 0)) return;
  try {
    // A recycled pid belongs to another process: its command line does not name this directory.
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(nodeDir)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

/**
 * Kills every nats-server a test run started under `runDir`, whatever became
 * of the test process (the Postgres sweep then removes the directories).
 */
export function sweepNatsServers(runDir: string): void {
  if (!existsSync(runDir)) return;
  for (const entry of readdirSync(runDir)) {
    if (!entry.startsWith(NATS_DIR_PREFIX)) continue;
    const clusterDir = path.join(runDir, entry);
    for (const node of readdirSync(clusterDir)) killNatsNode(path.join(clusterDir, node));
  }
}

/** Kills the nats-servers of run directories whose owner died (an interrupted earlier run). */
export function sweepStaleNatsServers(): void {
  for (const entry of readdirSync(os.tmpdir())) {
    const pid = Number(/^lockstep-run-(\d+)-/.exec(entry)?.[1]);
    if (!(pid > 0)) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH')
        sweepNatsServers(path.join(os.tmpdir(), entry));
    }
  }
}
