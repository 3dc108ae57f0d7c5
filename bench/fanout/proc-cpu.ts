import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** `/proc/<pid>/stat` fields after the command name (which may hold spaces). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null; // exited
  }
}

// After ")": state is field 3 of stat(5), so ppid (4) is at 1, utime (14) … cstime (17) at 11 … 14.
const PPID = 1;
const UTIME = 11;

/** CPU seconds (user + system) a process used so far; 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  const fields = pid === undefined ? null : statFields(pid);
  return fields ? (Number(fields[UTIME]) + Number(fields[UTIME + 1])) / TICKS : 0;
}

/** CPU seconds of the children `pid` has waited for (cutime + cstime): those that ended. */
export function reapedChildrenCpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return fields ? (Number(fields[UTIME + 2]) + Number(fields[UTIME + 3])) / TICKS : 0;
}

/** Summed CPU seconds of several processes. */
export const totalCpuSeconds = (pids: readonly (number | undefined)[]): number =>
  pids.reduce<number>((sum, pid) => sum + cpuSeconds(pid), 0);

/** The process's parent pid; null once it is gone. */
export function parentPid(pid: number): number | null {
  const fields = statFields(pid);
  return fields ? Number(fields[PPID]) : null;
}

const processes = (): number[] =>
  readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);

/**
 * CPU seconds of a process tree one level deep (a postmaster): itself, its
 * running children, and the children it has reaped (backends that ended).
 */
export function treeCpuSeconds(pid: number): number {
  const children = processes().filter((child) => statFields(child)?.[PPID] === String(pid));
  return cpuSeconds(pid) + reapedChildrenCpuSeconds(pid) + totalCpuSeconds(children);
}

/** Pids of this process's children running `command` (the NATS servers the harness spawned). */
export function childPids(command: string): number[] {
  return processes().filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      return name === command && statFields(pid)?.[PPID] === String(process.pid);
    } catch {
      return false;
    }
  });
}

/** CPU seconds every core of the machine has been busy so far (/proc/stat: all but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return (
    ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / TICKS
  );
}
