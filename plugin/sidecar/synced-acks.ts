import { type Lsn, lsnToBigInt } from '../protocol/index.js';

/**
 * Acknowledgements of the same second share one entry: the queue holds at
 * most an interval's worth of seconds, whatever the rate, and an LSN waits at
 * most this much longer than it must.
 */
const BUCKET_MS = 1_000;

/**
 * What nats-server's sync pass itself may take past its interval: it fsyncs
 * every dirty block file of the node, then arms its timer again (so passes
 * are an interval plus their own length apart), and the acknowledgement
 * reached us after the server wrote. A tenth of the interval, at least 1 s.
 */
export function syncMarginMs(intervalMs: number): number {
  return intervalMs <= 0 ? 0 : Math.max(1_000, Math.ceil(intervalMs / 10));
}

interface Bucket {
  /** When the bucket's first acknowledgement came: later ones join it for {@link BUCKET_MS}. */
  readonly opened: number;
  /** When its last one came: the bucket is due an interval after that. */
  acked: number;
  lsn: Lsn;
}

/**
 * LSNs JetStream acknowledged, released once the servers have had time to
 * write them to disk: JetStream's ack means the message is in the servers'
 * memory (nats-server before 2.10 fsyncs every `sync_interval`, 2 min by
 * default, on all nodes at once), so the slot is confirmed to an LSN only
 * an interval (plus {@link syncMarginMs}) after its acknowledgement. An
 * interval of 0 (servers run with `sync_interval: always`) releases at once.
 * Times are a monotonic clock's (ms); LSNs are added in increasing order.
 */
export class SyncedAcks {
  private readonly queue: Bucket[] = [];
  private readonly waitMs: number;
  /** The newest LSN released. */
  released: Lsn | null = null;

  constructor(intervalMs: number) {
    this.waitMs = intervalMs + syncMarginMs(intervalMs);
  }

  /** `lsn` was acknowledged at `now`; an LSN not past the newest added is ignored. */
  add(now: number, lsn: Lsn): void {
    const last = this.queue[this.queue.length - 1];
    const newest = last?.lsn ?? this.released;
    if (newest && lsnToBigInt(lsn) <= lsnToBigInt(newest)) return;
    if (last && now - last.opened < BUCKET_MS) {
      last.acked = now;
      last.lsn = lsn;
      return;
    }
    this.queue.push({ opened: now, acked: now, lsn });
  }

  /** The newest LSN acknowledged at least the wait before `now` and not released yet; null when none. */
  due(now: number): Lsn | null {
    let due: Lsn | null = null;
    while (this.queue.length > 0 && now - (this.queue[0] as Bucket).acked >= this.waitMs)
      due = (this.queue.shift() as Bucket).lsn;
    if (due) this.released = due;
    return due;
  }

  /**
   * Publishing starts again from `lsn`, where the bus ends: what waits past
   * it is not on the bus (nothing vouches for it any more), and `lsn` itself
   * counts as acknowledged at `now`, when it is first known to be there.
   */
  restart(now: number, lsn: Lsn): void {
    const end = lsnToBigInt(lsn);
    while (this.queue.length > 0 && lsnToBigInt((this.queue.at(-1) as Bucket).lsn) > end)
      this.queue.pop();
    this.add(now, lsn);
  }
}
