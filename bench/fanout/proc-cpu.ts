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

/** CPU seconds (user + system) a process used so far; 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  const fields = pid === undefined ? null : statFields(pid);
  // After ")": state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
  return fields ? (Number(fields[11]) + Number(fields[12])) / TICKS : 0;
}

/** Summed CPU seconds of several processes. */
export const totalCpuSeconds = (pids: readonly (number | undefined)[]): number =>
  pids.reduce<number>((sum, pid) => sum + cpuSeconds(pid), 0);

/** Pids of this process's children running `command` (the NATS servers the harness spawned). */
export function childPids(command: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        return name === command && statFields(pid)?.[1] === String(process.pid);
      } catch {
        return false;
      }
    });
}
