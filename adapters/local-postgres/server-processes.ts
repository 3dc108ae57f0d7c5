import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The postmaster's pid, from `postmaster.pid` in the data directory; null when the server is down. */
function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The postmaster and every process it forked (backends, walsenders, background workers). */
function serverProcesses(dataDir: string): number[] {
  const postmaster = postmasterPid(dataDir);
  if (postmaster === null) return [];
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name (which may hold spaces) start after its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === postmaster) pids.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return pids;
}

/**
 * Sends `signal` to the whole server: SIGSTOP freezes it as a hung host would
 * (connections stay open, the kernel still accepts TCP, nothing answers);
 * SIGCONT thaws it. The postmaster is stopped first and resumed last, so no
 * new process escapes a freeze.
 */
export function signalServer(dataDir: string, signal: 'SIGSTOP' | 'SIGCONT'): void {
  const pids = serverProcesses(dataDir);
  const ordered = signal === 'SIGSTOP' ? pids : [...pids.slice(1), ...pids.slice(0, 1)];
  for (const pid of ordered) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already.
    }
  }
}
