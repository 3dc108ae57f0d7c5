import type { AttachProgress } from '../attach/attach.js';

/**
 * Attach progress for people: on a TTY one live line per table (rows copied),
 * otherwise a line per finished table and step, for logs.
 */
export function attachProgressView(out: NodeJS.WriteStream = process.stdout): AttachProgress {
  const tty = out.isTTY === true;
  const lines = new Map<string, string>();
  let drawn = 0;
  const redraw = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A`);
    for (const line of lines.values()) out.write(`\x1b[2K${line}\n`);
    drawn = lines.size;
  };
  return {
    step(message) {
      if (tty && drawn > 0) {
        drawn = 0;
        lines.clear();
      }
      out.write(`• ${message}\n`);
    },
    table(replica, table, rows, done) {
      const line = `  ${done ? '✓' : '…'} ${replica}: ${table}  ${rows.toLocaleString('en')} rows`;
      if (tty) {
        lines.set(`${replica}\u0000${table}`, line);
        redraw();
      } else if (done) {
        out.write(`${line}\n`);
      }
    },
  };
}
