import type { ConsumerMessages, ConsumerNotification, JsMsg } from '@nats-io/jetstream';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { PacketFeed } from '../../plugin/ports/packet-reader.js';
import type { PacketPart } from '../../plugin/protocol/index.js';
import { decodeBusMessage } from '../../plugin/protocol/packet-batch-codec.js';
import { PacketPartFormatError } from '../../plugin/protocol/packet-part-codec.js';

/**
 * How long the agent may wait for a part with no sign of the consumer's
 * server (a message, a heartbeat, an expired pull) before the feed is given
 * up. A live consumer that has a pull waiting gives a sign every idle
 * heartbeat (half the pull's expiry, 1 s here).
 */
export const SILENCE_MS = 10_000;

/** Notifications that only come when the server hosting the consumer answered. */
const SIGNS: ReadonlySet<ConsumerNotification['type']> = new Set([
  'heartbeat',
  'debug',
  'discard',
  'flow_control',
  'ordered_consumer_recreated',
]);

/**
 * The feed's consumer went silent: its server hangs (paused, or cut off
 * without the connection noticing), or the client keeps asking one that does
 * not answer. The client alone never gives up then (it retries the consumer
 * info for ever): the reader is started anew, which makes a new consumer.
 */
export class FeedSilentError extends Error {
  constructor(ms: number) {
    super(`no message nor heartbeat from the bus consumer for ${ms} ms`);
  }
}

/** Parts of an ordered consumer, decoded a message at a time as the agent asks for them. */
export class NatsPacketFeed implements PacketFeed {
  private readonly iterator: AsyncIterator<JsMsg>;
  /** When the consumer's server last gave a sign (ms). */
  private lastSign = Date.now();
  /** Parts of the last message read not handed out yet (a message may carry several packets). */
  private queued: PacketPart[] = [];
  private nextQueued = 0;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly replica: string,
    /** Called once the consumer went silent, before the read fails (the connection may be what hangs). */
    private readonly onSilent: () => Promise<unknown> = async () => undefined,
    private readonly silenceMs = SILENCE_MS,
  ) {
    this.iterator = messages[Symbol.asyncIterator]();
    void this.watch();
  }

  async next(): Promise<PacketPart> {
    if (this.nextQueued < this.queued.length) return this.queued[this.nextQueued++] as PacketPart;
    const read = this.iterator.next();
    const { value, done } = await this.untilSilent(read).catch(async (error: unknown) => {
      if (error instanceof FeedSilentError) await this.onSilent().catch(() => undefined);
      throw error;
    });
    if (done) throw new Error('the bus consumer ended');
    this.lastSign = Date.now();
    try {
      this.queued = decodeBusMessage(value.data);
      this.nextQueued = 1;
      return this.queued[0] as PacketPart;
    } catch (error) {
      if (!(error instanceof PacketPartFormatError)) throw error;
      throw new LockstepError({
        node: this.replica,
        problem: `message ${value.seq} of the bus is ${error.message}`,
        fix: 'run a lockstep agent of the same version as the publishing lockstep run',
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    // Not close(): that resolves only once the iterator ran to its end, and nobody reads it now.
    this.messages.stop();
  }

  private async watch(): Promise<void> {
    for await (const status of this.messages.status())
      if (SIGNS.has(status.type)) this.lastSign = Date.now();
  }

  /** What `pending` resolves to, unless the server gives no sign for `silenceMs` meanwhile. */
  private async untilSilent<T>(pending: Promise<T>): Promise<T> {
    const since = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silent = new Promise<never>((_, reject) => {
      const check = () => {
        const quiet = Date.now() - Math.max(this.lastSign, since);
        if (quiet >= this.silenceMs) reject(new FeedSilentError(quiet));
        else timer = setTimeout(check, this.silenceMs - quiet);
      };
      timer = setTimeout(check, this.silenceMs);
    });
    // The read given up on settles when the feed is closed: nobody waits for it.
    pending.catch(() => undefined);
    try {
      return await Promise.race([pending, silent]);
    } finally {
      clearTimeout(timer);
    }
  }
}
