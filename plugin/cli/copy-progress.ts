/** One table copy to one replica, as planned: its size on the primary. */
export interface PlannedCopy {
  readonly replica: string;
  readonly table: string;
  readonly bytes: number;
  /** The planner's row estimate. */
  readonly rows: number;
}

interface CopyState extends PlannedCopy {
  copied: number;
  done: boolean;
  started: number | null;
  finished: number | null;
}

const MB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
const eta = (seconds: number) =>
  seconds >= 3600
    ? `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`
    : seconds >= 60
      ? `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`
      : `${Math.ceil(seconds)} s`;

/**
 * Progress of attach's copies by bytes: a table's bytes on the primary are
 * known up front; what is done is estimated from rows copied against the
 * planner's row count (exact once the table is done). Rates and ETAs follow.
 * Pure: the clock is passed in.
 */
export class CopyProgress {
  private readonly copies = new Map<string, CopyState>();
  private began: number | null = null;

  plan(copies: readonly PlannedCopy[], now: number): void {
    this.began = now;
    for (const c of copies)
      this.copies.set(key(c.replica, c.table), {
        ...c,
        copied: 0,
        done: false,
        started: null,
        finished: null,
      });
  }

  update(replica: string, table: string, rows: number, done: boolean, now: number): void {
    const copy = this.copies.get(key(replica, table));
    if (!copy) return;
    copy.started ??= now;
    copy.copied = rows;
    copy.done = done;
    if (done) copy.finished = now;
  }

  /** One table's line: rows, estimated bytes of the total, rate and ETA (or time taken). */
  tableLine(replica: string, table: string, now: number): string {
    const copy = this.copies.get(key(replica, table));
    if (!copy) return `${replica}: ${table}`;
    const rows = `${copy.copied.toLocaleString('en')} rows`;
    const seconds = ((copy.finished ?? now) - (copy.started ?? now)) / 1000;
    if (copy.done)
      return `${replica}: ${table}  ${rows}  ${mb(copy.bytes)} in ${seconds.toFixed(1)} s`;
    const done = bytesDone(copy);
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 ? `  ETA ${eta((copy.bytes - done) / rate)}` : '';
    return `${replica}: ${table}  ${rows}  ~${mb(done)} of ${mb(copy.bytes)} (${percent(done, copy.bytes)})${rate > 0 ? `  ${mb(rate)}/s` : ''}${left}`;
  }

  /** Every copy together: bytes done of the total, rate and ETA. */
  overallLine(now: number): string {
    let total = 0;
    let done = 0;
    for (const copy of this.copies.values()) {
      total += copy.bytes;
      done += bytesDone(copy);
    }
    const seconds = (now - (this.began ?? now)) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 && done < total ? `  ETA ${eta((total - done) / rate)}` : '';
    return `copied ~${mb(done)} of ${mb(total)} (${percent(done, total)})${rate > 0 ? `  ${mb(rate)}/s` : ''}${left}`;
  }
}

function key(replica: string, table: string): string {
  return `${replica}\u0000${table}`;
}

function bytesDone(copy: CopyState): number {
  if (copy.done) return copy.bytes;
  // Estimated: the planner's count can be off, so an unfinished copy never shows 100 %.
  return copy.bytes * Math.min(0.99, copy.copied / Math.max(1, copy.rows));
}

function percent(done: number, total: number): string {
  return `${total > 0 ? Math.floor((100 * done) / total) : 100} %`;
}
