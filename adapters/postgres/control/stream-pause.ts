import type pg from 'pg';
import { connectNode } from '../connection/node-connection.js';

/** The channel `pause` and `resume` notify on; the payload is the stream's name. */
const PAUSE_CHANNEL = 'lockstep_pause';

/** Whether a stream is paused: since when, or null; undefined when the stream is not attached. */
export async function readPause(
  client: pg.ClientBase | pg.Pool,
  stream: string,
): Promise<Date | null | undefined> {
  const { rows } = await client.query<{ paused_at: Date | null }>(
    'SELECT paused_at FROM lockstep.streams WHERE stream = $1',
    [stream],
  );
  return rows[0] === undefined ? undefined : rows[0].paused_at;
}

/** A stream's pause time before and after {@link writePause} (null: running). */
export interface PauseChange {
  readonly before: Date | null;
  readonly after: Date | null;
}

/**
 * Pauses (or resumes) a stream and tells a running sidecar, in one
 * transaction: the flag and the notification commit together, and the row is
 * locked while read, so `before` is exact even against a concurrent command.
 * Pausing a paused stream keeps its first time. Undefined when the stream is
 * not attached.
 */
export async function writePause(
  client: pg.ClientBase,
  stream: string,
  paused: boolean,
): Promise<PauseChange | undefined> {
  await client.query('BEGIN');
  try {
    const { rows } = await client.query<{ paused_at: Date | null }>(
      'SELECT paused_at FROM lockstep.streams WHERE stream = $1 FOR UPDATE',
      [stream],
    );
    const row = rows[0];
    let change: PauseChange | undefined;
    if (row) {
      const updated = await client.query<{ paused_at: Date | null }>(
        `UPDATE lockstep.streams SET paused_at = CASE WHEN $2 THEN coalesce(paused_at, now()) END
          WHERE stream = $1 RETURNING paused_at`,
        [stream, paused],
      );
      await client.query('SELECT pg_notify($1, $2)', [PAUSE_CHANNEL, stream]);
      change = { before: row.paused_at, after: updated.rows[0]?.paused_at ?? null };
    }
    await client.query('COMMIT');
    return change;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
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
