import type { ConsumerMessages, ConsumerNotification, JsMsg } from '@nats-io/jetstream';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { PacketFeed } from '../../plugin/ports/packet-reader.js';
import type { BusPiece } from '../../plugin/protocol/change-fragments.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import { partPosition } from '../../plugin/protocol/packet-bus-names.js';
import { PacketPartFormatError } from '../../plugin/protocol/packet-part-codec.js';
import { RelationInterner } from '../../plugin/protocol/relation-interner.js';
import type { PacketSignatureCheck } from './packet-signature-check.js';

/**
 * How long the agent may wait for a part with no sign of the consumer's
 * server (a message, a heartbeat, an expired pull) before the feed is given
 * up. A live consumer that has a pull waiting gives a sign every idle
 * heartbeat (1 s, packet-consumer.ts).
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

/**
 * The feed's consumer answers (heartbeats) but delivers nothing while the
 * stream holds messages past the last one it delivered: the consumer's server
 * holds a replica of the stream that stopped applying (seen on nats-server
 * 2.9 after its node was paused and resumed). It would wait for ever: the
 * reader is started anew, which makes a new consumer, placed afresh.
 */
export class FeedStalledError extends Error {
  constructor(ms: number, delivered: number, end: number) {
    super(
      `the bus consumer delivered nothing for ${ms} ms while the stream holds sequences ${delivered + 1}..${end}`,
    );
  }
}

/**
 * The stream ends before the last message the feed delivered: it lost its
 * tail or was made anew (a power loss of every NATS node brings it back
 * with what was on disk, and sequences go on from there). The consumer
 * waits at the old next sequence, which the stream may not reach for long:
 * the reader is started anew, which finds the replica's next version by
 * the stream as it is now.
 */
export class FeedRewoundError extends Error {
  constructor(delivered: number, end: number) {
    super(
      end < delivered
        ? `the bus stream ends at sequence ${end}, before sequence ${delivered} the consumer delivered: it lost its tail or was made anew`
        : `the bus stream's message ${end} is not the one the consumer delivered there: it was made anew`,
    );
  }
}

/** Where the stream ends, as its leader says. */
export interface StreamEnd {
  readonly sequence: number;
  /** When its last message was stored (ms since the epoch; a deleted or purged one's time stays). */
  readonly storedAt: number;
}

/** How the feed learns where the stream ends (as its leader says) and where its consumer starts. */
export interface FeedProgress {
  /** The consumer's first stream sequence. */
  readonly start: number;
  /** Bounded (a request with a timeout); throws when no leader answers for the stream. */
  end(): Promise<StreamEnd>;
}

/** When a delivered message was stored, to the millisecond (as `last_ts` is compared). */
function storedAt(message: JsMsg): number {
  return Number(message.timestampNanos / 1_000_000n);
}

/** Parts (and change fragments) of an ordered consumer, decoded a message at a time as the agent asks for them (a message may carry several packets). */
export class NatsPacketFeed implements PacketFeed {
  private readonly iterator: AsyncIterator<JsMsg>;
  /** When the consumer's server last gave a sign (ms). */
  private lastSign = Date.now();
  /** When the consumer last delivered a message (ms). */
  private lastMessage = Date.now();
  /** The stream sequence of the last message delivered. */
  private delivered: number;
  /** That message (its store time is read only when the stream's end is compared with it). */
  private deliveredMessage: JsMsg | null = null;
  /** Pieces of the last message read not handed out yet. */
  private queued: BusPiece[] = [];
  private nextQueued = 0;
  /** The last message's `Lockstep-Changes`: the count through its last piece. */
  private messageChanges: number | null = null;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly replica: string,
    /** Every message is checked against it before anything of it is read. */
    private readonly signature: PacketSignatureCheck,
    /** Called once the consumer went silent, before the read fails (the connection may be what hangs). */
    private readonly onSilent: () => Promise<unknown> = async () => undefined,
    private readonly silenceMs = SILENCE_MS,
    private readonly progress: FeedProgress | null = null,
    /** Shared by the reader's feeds: one object per relation across re-reads too. */
    private readonly relations = new RelationInterner(),
  ) {
    this.iterator = messages[Symbol.asyncIterator]();
    this.delivered = (progress?.start ?? 1) - 1;
    void this.watch();
  }

  async next(): Promise<BusPiece> {
    if (this.nextQueued < this.queued.length) return this.queued[this.nextQueued++] as BusPiece;
    const read = this.iterator.next();
    const { value, done } = await this.untilSilent(read).catch(async (error: unknown) => {
      if (error instanceof FeedSilentError) await this.onSilent().catch(() => undefined);
      throw error;
    });
    if (done) throw new Error('the bus consumer ended');
    this.lastSign = Date.now();
    this.lastMessage = this.lastSign;
    this.delivered = value.seq;
    this.deliveredMessage = value;
    const header = (name: string) => value.headers?.get(name) || undefined;
    this.signature.check(value.seq, header, value.data);
    this.messageChanges = partPosition(header)?.changes ?? null;
    try {
      this.queued = decodeBusPieces(value.data, this.relations);
      this.nextQueued = 1;
      return this.queued[0] as BusPiece;
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

  changesThrough(): number | null {
    return this.nextQueued === this.queued.length ? this.messageChanges : null;
  }

  async close(): Promise<void> {
    // Not close(): that resolves only once the iterator ran to its end, and nobody reads it now.
    this.messages.stop();
  }

  private async watch(): Promise<void> {
    for await (const status of this.messages.status())
      if (SIGNS.has(status.type)) this.lastSign = Date.now();
  }

  /**
   * What `pending` resolves to, unless the server gives no sign for
   * `silenceMs` meanwhile, or delivers nothing that long while the stream
   * holds more (a heartbeat alone says the server runs, not that it delivers)
   * or ends before what it delivered (lost, then made again).
   */
  private async untilSilent<T>(pending: Promise<T>): Promise<T> {
    const since = Date.now();
    /** When the stream's end was last asked for (the wait's start counts as one). */
    let asked = since;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const silent = new Promise<never>((_, reject) => {
      const check = async () => {
        const quiet = Date.now() - Math.max(this.lastSign, since);
        if (quiet >= this.silenceMs) return reject(new FeedSilentError(quiet));
        const idle = Date.now() - Math.max(this.lastMessage, asked);
        if (idle >= this.silenceMs) {
          asked = Date.now();
          const stalled = await this.stalled(Date.now() - Math.max(this.lastMessage, since));
          if (stalled) return reject(stalled);
        }
        if (done) return;
        const left = (from: number) => this.silenceMs - (Date.now() - from);
        const wait = Math.min(
          left(Math.max(this.lastSign, since)),
          left(Math.max(this.lastMessage, asked)),
        );
        timer = setTimeout(check, Math.max(wait, 1));
      };
      timer = setTimeout(check, this.silenceMs);
    });
    // The read given up on settles when the feed is closed: nobody waits for it.
    pending.catch(() => undefined);
    try {
      return await Promise.race([pending, silent]);
    } finally {
      done = true;
      clearTimeout(timer);
    }
  }

  /**
   * The error when the stream holds messages past the last one delivered, or
   * ends before it, or ends at it with another message than the one
   * delivered (made anew and grown back to the same sequence); null when it
   * ends there, or cannot tell.
   */
  private async stalled(idle: number): Promise<FeedStalledError | FeedRewoundError | null> {
    if (!this.progress) return null;
    const [delivered, message] = [this.delivered, this.deliveredMessage];
    const end = await this.progress.end().catch(() => null);
    if (end === null || this.delivered !== delivered) return null;
    if (end.sequence < delivered) return new FeedRewoundError(delivered, end.sequence);
    if (end.sequence > delivered) return new FeedStalledError(idle, delivered, end.sequence);
    // Deletes and purges keep the stream's last time: only another message there changes it.
    if (message?.seq === delivered && storedAt(message) !== end.storedAt)
      return new FeedRewoundError(delivered, end.sequence);
    return null;
  }
}
