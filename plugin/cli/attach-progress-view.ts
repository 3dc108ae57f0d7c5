import type { AttachProgress, StepFields } from '../attach/attach.js';
import { CopyProgress } from './copy-progress.js';

/** A step's fields as ` key=value` (lists joined by commas; a value with spaces quoted). */
export function formatStepFields(fields: StepFields | undefined): string {
  return Object.entries(fields ?? {})
    .map(([key, value]) => {
      const text = Array.isArray(value) ? value.join(', ') : String(value);
      return ` ${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
    })
    .join('');
}

/**
 * Attach progress for people: on a TTY one live line per table copy (rows,
 * bytes, rate, ETA) under an overall line; otherwise a line per finished
 * table and step, and the overall line every 10 s, for logs.
 */
export function attachProgressView(
  out: NodeJS.WriteStream = process.stdout,
  clock: () => number = Date.now,
): AttachProgress {
  const tty = out.isTTY === true;
  const progress = new CopyProgress();
  const shown = new Map<string, [string, string]>();
  let planned = false;
  let drawn = 0;
  let lastPlain = 0;
  const redraw = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A`);
    const now = clock();
    const lines = [`  ${progress.overallLine(now)}`];
    for (const [replica, table] of shown.values())
      lines.push(`    ${progress.tableLine(replica, table, now)}`);
    for (const line of lines) out.write(`\x1b[2K${line}\n`);
    drawn = lines.length;
  };
  const line = (mark: string, message: string, fields: StepFields | undefined) => {
    if (tty && drawn > 0) {
      drawn = 0;
      shown.clear();
    }
    out.write(`${mark} ${message}${formatStepFields(fields)}\n`);
  };
  return {
    step: (message, fields) => line('•', message, fields),
    warn: (message, fields) => line('!', message, fields),
    plan(copies) {
      planned = copies.length > 0;
      progress.plan(copies, clock());
    },
    table(replica, table, rows, done) {
      const now = clock();
      progress.update(replica, table, rows, done, now);
      if (tty) {
        shown.set(`${replica}\u0000${table}`, [replica, table]);
        redraw();
        return;
      }
      if (done) out.write(`  ✓ ${progress.tableLine(replica, table, now)}\n`);
      if (planned && now - lastPlain >= 10_000) {
        lastPlain = now;
        out.write(`  ${progress.overallLine(now)}\n`);
      }
    },
  };
}
