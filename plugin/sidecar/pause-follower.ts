import type { Logger } from 'pino';
import type { PauseSignal } from './sidecar-parts.js';

/** How a process that streams the slot follows `lockstep pause` and `lockstep resume`. */
export interface PauseFollowing {
  /** Since when the stream is paused on the primary, or null. */
  readonly read: () => Promise<Date | null>;
  /** Word at once that the flag changed (LISTEN/NOTIFY). */
  readonly signal: PauseSignal;
  readonly log: Logger;
  /** The flag changed: `since` null once resumed. */
  readonly changed: (since: Date | null) => void;
}

/**
 * The primary's pause flag as this process follows it (the in-process
 * sidecar and the bus publisher alike): read on demand, and again at once on
 * every notification once listening.
 */
export class PauseFollower {
  /** Since when the stream is paused, as last read; null while it runs. */
  since: Date | null = null;
  private listening = false;
  private lastRead = 0;
  /** Reads started, and the newest that answered: an older answer coming last is dropped. */
  private reads = 0;
  private answered = 0;

  constructor(private readonly parts: PauseFollowing) {}

  /** Starts listening (once); the flag is read again once it listens, should it have changed in between. */
  listen(): void {
    if (this.listening) return;
    this.listening = true;
    void this.parts.signal.listen(() => void this.follow()).then(() => this.follow());
  }

  /** Reads the flag again when `ms` passed since the last read (should a notification have been missed). */
  followEvery(ms: number): void {
    if (Date.now() - this.lastRead >= ms) void this.follow();
  }

  /** Reads whether the stream is paused and, when that changed, says so (logged) and calls back. */
  async follow(): Promise<void> {
    const { log } = this.parts;
    this.lastRead = Date.now();
    const read = ++this.reads;
    let since: Date | null;
    try {
      since = await this.parts.read();
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'cannot read whether the stream is paused');
      return;
    }
    if (read < this.answered) return;
    this.answered = read;
    if ((since === null) === (this.since === null)) return;
    this.since = since;
    if (since)
      // Replicas stay connected; the slot keeps WAL from the lowest replica position.
      log.info(
        { since: since.toISOString(), event: 'replication-paused', fix: 'lockstep resume' },
        'replication is paused: the stream stops',
      );
    else log.info({ event: 'replication-resumed' }, 'replication is resumed');
    this.parts.changed(since);
  }

  /** Stops listening. */
  close(): Promise<void> {
    return this.parts.signal.close();
  }
}
