import type pg from 'pg';
import { connectNode } from '../connection/node-connection.js';
import { controlDbOn } from './control-schema.js';
import type { ControlSession } from './lockstep-schema.js';
import { PAUSE_CHANNEL, PgStreamsStore } from './streams-store.js';

/** Whether a stream is paused: since when, or null; undefined when the stream is not attached. */
export async function readPause(
  client: ControlSession,
  stream: string,
): Promise<Date | null | undefined> {
  return new PgStreamsStore(controlDbOn(client)).pausedAt(stream);
}

/**
 * Tells the sidecar at once when its stream is paused or resumed: LISTEN on a
 * connection of its own to the primary. When that connection is lost it is
 * opened again (backing off), and `changed` is called once it is back, since
 * a notification may have been missed meanwhile.
 */
export class PauseListener {
  private client: pg.Client | null = null;
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly url: string,
    private readonly stream: string,
  ) {}

  /** Starts listening; `changed` is called on every pause or resume of the stream (read the flag then). */
  async listen(changed: () => void): Promise<void> {
    await this.connect(changed, false, 500);
  }

  private async connect(changed: () => void, again: boolean, delay: number): Promise<void> {
    if (this.closed) return;
    let client: pg.Client | null = null;
    try {
      client = await connectNode('primary', this.url, 'lockstep-pause');
      client.on('notification', (n) => {
        if (n.channel === PAUSE_CHANNEL && n.payload === this.stream) changed();
      });
      await client.query(`LISTEN ${PAUSE_CHANNEL}`);
    } catch {
      await client?.end().catch(() => undefined);
      this.reconnect(changed, Math.min(delay * 2, 30_000));
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    client.on('end', () => {
      if (this.client !== client) return;
      this.client = null;
      this.reconnect(changed, 500);
    });
    if (again) changed();
  }

  private reconnect(changed: () => void, delay: number): void {
    if (this.closed) return;
    this.retry = setTimeout(() => void this.connect(changed, true, delay), delay);
  }

  /** Stops listening. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}
