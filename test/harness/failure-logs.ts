import { afterEach } from 'vitest';
import {
  type LockstepProcess,
  recordStartedProcesses,
  takeStartedProcesses,
} from '../support/lockstep-process.js';

/** Log lines kept per process: enough to see the last steps, few enough to keep CI's summary readable. */
const TAIL_LINES = 12;
/** Processes reported: the long-lived ones (`run`, `agent`) first, then the last commands. */
const MOST_PROCESSES = 6;
/** The fields that say what happened; the rest (pid, hostname, app) is noise in a failure report. */
const FIELDS = [
  'time',
  'level',
  'replica',
  'node',
  'event',
  'state',
  'gid',
  'version',
  'msg',
  'err',
  'reason',
];

/**
 * vitest setup file (integration): when a test fails, the end of the log of
 * each lockstep process it started, or that still runs, is appended to its
 * first error. CI shows
 * the failures' summary; the processes' output is otherwise lost with them.
 */
recordStartedProcesses();

afterEach((context) => {
  const started = takeStartedProcesses();
  const result = context.task.result;
  const first = result?.errors?.[0];
  if (result?.state !== 'fail' || !first || started.length === 0) return;
  const longLived = (p: LockstepProcess) => p.args[0] === 'run' || p.args[0] === 'agent';
  const shown = [...started.filter(longLived), ...started.filter((p) => !longLived(p)).reverse()];
  const tails = shown.slice(0, MOST_PROCESSES).map((p) => {
    const lines = p.output.trimEnd().split('\n').slice(-TAIL_LINES).map(compact);
    // A connection URL among the arguments keeps its user, never its password.
    const args = p.args.join(' ').replace(/(:\/\/[^:@/\s]+):[^@/\s]*@/g, '$1:***@');
    return [`--- lockstep ${args} (last ${lines.length} lines)`, ...lines].join('\n');
  });
  first.message += `\n${tails.join('\n')}`;
});

/** One log line, its telling fields only (JSON lines), cut to 300 characters. */
function compact(line: string): string {
  let text = line;
  if (line.startsWith('{')) {
    try {
      const fields = JSON.parse(line) as Record<string, unknown>;
      text = FIELDS.filter((k) => fields[k] !== undefined)
        .map((k) => `${k}=${typeof fields[k] === 'string' ? fields[k] : JSON.stringify(fields[k])}`)
        .join(' ');
    } catch {
      // Not JSON after all: shown as printed.
    }
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
