import type { LockstepStatus, ReplicaStatus } from '../status/read-status.js';
import { formatTable } from './status-view.js';

/** One refresh of `status --watch`: the status and when it was read. */
export interface WatchSample {
  readonly status: LockstepStatus;
  readonly at: Date;
}

/** Moves the cursor home and clears the screen: a TTY view is redrawn in place. */
export const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/** Versions per second a replica applied since the previous sample (null when unknown). */
export function applyRate(
  name: string,
  current: WatchSample,
  previous: WatchSample | null,
): number | null {
  const now = current.status.replicas.find((r) => r.name === name)?.version;
  const before = previous?.status.replicas.find((r) => r.name === name)?.version;
  const seconds = previous ? (current.at.getTime() - previous.at.getTime()) / 1000 : 0;
  if (now == null || before == null || !(seconds > 0)) return null;
  return Math.max(0, now - before) / seconds;
}

/** Bytes in a short human unit. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const orDash = (value: number | null, digits = 0) =>
  value === null ? '-' : digits > 0 ? value.toFixed(digits) : String(value);

/** A replica's lag as versions / bytes / seconds. */
function lag(r: ReplicaStatus): string {
  return `${orDash(r.lagVersions)}/${formatBytes(r.lagBytes)}/${orDash(r.lagSeconds, 1)}s`;
}

/** The primary's line; its error when it could not be read. */
function primaryLine(status: LockstepStatus): string {
  const p = status.primary;
  if (p.error) return `primary: ${p.error.split('\n')[0]}`;
  const paused = status.paused ? `  PAUSED since ${status.pausedSince}` : '';
  return `primary: version ${orDash(p.version)}  lsn ${p.lsn ?? '-'}  wal ${p.walLsn ?? '-'}  slot retains ${formatBytes(p.slotRetainedBytes)}${paused}`;
}

/** Two-phase rounds, and the round the stream is held at. */
function roundsLines(status: LockstepStatus): string[] {
  const t = status.twoPhase;
  if (!t) return ['two-phase: no rounds reported yet'];
  const lines = [`two-phase: ${t.roundsCommitted} committed, ${t.roundsAborted} aborted`];
  if (t.held) {
    lines.push(`  held at version ${t.held.from} after ${t.held.attempts} refused attempt(s):`);
    for (const [who, why] of Object.entries(t.held.refusals))
      lines.push(`    ${who}: ${why.split('\n')[0]}`);
  }
  return lines;
}

/** The full view for a terminal: primary, replicas with lag and apply rate, rounds, in-doubt. */
export function watchScreen(current: WatchSample, previous: WatchSample | null): string {
  const { status } = current;
  const rows = status.replicas.map((r) => {
    const rate = applyRate(r.name, current, previous);
    return [
      r.name,
      r.state,
      orDash(r.version),
      orDash(r.lagVersions),
      formatBytes(r.lagBytes),
      orDash(r.lagSeconds, 1),
      rate === null ? '-' : rate.toFixed(1),
      r.error ? (r.error.split('\n')[0] ?? '') : '',
    ];
  });
  const header = [
    'replica',
    'state',
    'version',
    'lag',
    'lag bytes',
    'lag s',
    'versions/s',
    'error',
  ];
  const lines = [
    `lockstep status at ${current.at.toISOString()} (Ctrl-C ends)`,
    primaryLine(status),
    ...formatTable(header, rows),
    ...roundsLines(status),
    `in-doubt: ${status.inDoubt.length === 0 ? 'none' : status.inDoubt.length}`,
    ...status.inDoubt.map((t) => `  ${t.node}: ${t.gid} (prepared ${t.ageSeconds}s ago)`),
  ];
  return `${lines.join('\n')}\n`;
}

/** One summary line per refresh, for logs and pipes. */
export function watchLine(current: WatchSample, previous: WatchSample | null): string {
  const { status } = current;
  const head = status.primary.error
    ? 'primary error'
    : `primary v${orDash(status.primary.version)}${status.paused ? ' paused' : ''}`;
  const replicas = status.replicas.map((r) => {
    const rate = applyRate(r.name, current, previous);
    return `${r.name} ${r.state} v${orDash(r.version)} lag ${lag(r)} ${rate === null ? '-' : rate.toFixed(1)} v/s`;
  });
  const t = status.twoPhase;
  const rounds = t
    ? `rounds ${t.roundsCommitted}/${t.roundsAborted}${t.held ? ' held' : ''}`
    : 'rounds -';
  const parts = [head, ...replicas, rounds, `in-doubt ${status.inDoubt.length}`];
  return `${current.at.toISOString()} ${parts.join(' | ')}\n`;
}

/** What one refresh writes: the whole screen redrawn in place on a TTY, else one line. */
export function watchFrame(
  current: WatchSample,
  previous: WatchSample | null,
  tty: boolean,
): string {
  return tty ? `${CLEAR_SCREEN}${watchScreen(current, previous)}` : watchLine(current, previous);
}
