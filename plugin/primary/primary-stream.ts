import type { ChangeSource } from '../ports/change-source.js';
import type { DecodedMessage } from '../ports/decoded-message.js';
import { type Lsn, lsnBefore, type PacketPart, type ResumePoint } from '../protocol/index.js';
import {
  PacketAssembler,
  type PacketAssemblerOptions,
  type PhaseDecider,
} from './packet-assembler.js';

/** Options of a primary stream. */
export interface PrimaryStreamOptions {
  /** Where to resume: the last packet every consumer has applied (version 0 at attach). */
  readonly resume: ResumePoint;
  /** Largest number of changes in one packet part. Default 2,000. */
  readonly maxPartChanges?: number;
  /** Reading pauses once this many changes wait unconsumed, and resumes at half. Default 20,000. */
  readonly maxBufferedChanges?: number;
  /** Phase policy; every packet is one-phase when omitted. */
  readonly decidePhase?: PhaseDecider;
  /** Whether captured DDL is carried to the replicas. */
  readonly captureDdl?: boolean;
  /** Told of each control message the stream drops (forged, or DDL with capture off). */
  readonly onIgnored?: PacketAssemblerOptions['onIgnored'];
}

/** Counters a stream exposes for status and tests. */
export interface PrimaryStreamStats {
  /** Changes assembled but not yet taken by the consumer. */
  bufferedChanges: number;
  /** Highest `bufferedChanges` seen. */
  peakBufferedChanges: number;
  /** How many times reading was paused for back-pressure. */
  pauses: number;
  /** Version of the last packet assembled. */
  lastVersion: number;
}

/**
 * The primary's stream of versioned packets: decodes the slot through a
 * {@link ChangeSource}, assembles packet parts, and hands them out with
 * back-pressure (a slow consumer pauses reading from the server, so memory is
 * bounded by `maxBufferedChanges`, not by transaction size). It acknowledges
 * nothing by itself: the consumer calls {@link confirm} once data is durable.
 */
export class PrimaryStream implements AsyncIterable<PacketPart> {
  private readonly assembler: PacketAssembler;
  private readonly maxBuffered: number;
  /** Parts not yet taken start at `queueHead`; taken slots are cleared so memory is released. */
  private queue: (PacketPart | undefined)[] = [];
  private queueHead = 0;
  private paused = false;
  private failure: Error | null = null;
  private ended = false;
  private wake: (() => void) | null = null;
  private started = false;
  /** Where the stream last stood between transactions at a keepalive (see {@link idlePoint}). */
  private idle: ResumePoint | null = null;
  readonly stats: PrimaryStreamStats;

  constructor(
    private readonly source: ChangeSource,
    options: PrimaryStreamOptions,
  ) {
    this.assembler = new PacketAssembler({
      resume: options.resume,
      maxPartChanges: options.maxPartChanges ?? 2_000,
      decidePhase: options.decidePhase,
      captureDdl: options.captureDdl,
      onIgnored: options.onIgnored,
    });
    this.maxBuffered = options.maxBufferedChanges ?? 20_000;
    this.stats = {
      bufferedChanges: 0,
      peakBufferedChanges: 0,
      pauses: 0,
      lastVersion: options.resume.version,
    };
  }

  /** Connects and starts replication; rejects with the source's error if it cannot. */
  async start(): Promise<void> {
    if (this.started) throw new Error('PrimaryStream.start called twice');
    this.started = true;
    await this.source.start(
      (message) => this.onMessage(message),
      (error) => this.fail(error),
      (walEnd) => this.onWalEnd(walEnd),
    );
  }

  /**
   * A point a consumer holding every packet so far may store as its position
   * (and the slot be confirmed to) although no replicated transaction
   * committed there: the server's end of WAL at a keepalive between
   * transactions, once the consumer has taken every packet assembled before
   * it. Confirming it releases the WAL of unreplicated tables; `lsn` is one
   * before that end, as positions name the last commit held and the slot is
   * confirmed to `lsn + 1`. Null while packets wait or a transaction is open.
   */
  get idlePoint(): ResumePoint | null {
    const idle = this.idle;
    if (!idle || this.queueHead < this.queue.length) return null;
    return idle.version === this.assembler.lastVersion ? idle : null;
  }

  /** Tells the primary that everything up to the packet committed at `lsn` is durable. */
  confirm(lsn: Lsn): void {
    this.source.acknowledge(lsn);
  }

  /** Stops streaming; the iterator ends after the parts already assembled. */
  async stop(): Promise<void> {
    this.ended = true;
    this.notify();
    await this.source.stop();
  }

  /** The next part if one is ready, without waiting; `undefined` if none is. Throws the stream's failure. */
  poll(): PacketPart | undefined {
    if (this.queueHead < this.queue.length) return this.take();
    if (this.failure) throw this.failure;
    return undefined;
  }

  /** Waits for the next part; `null` once the stream has stopped. Throws the stream's failure. */
  async next(): Promise<PacketPart | null> {
    for (;;) {
      if (this.queueHead < this.queue.length) return this.take();
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<PacketPart> {
    for (;;) {
      const part = await this.next();
      if (!part) return;
      yield part;
    }
  }

  private take(): PacketPart {
    const part = this.queue[this.queueHead] as PacketPart;
    this.queue[this.queueHead++] = undefined;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 4096) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.stats.bufferedChanges -= part.changes.length;
    if (this.paused && this.stats.bufferedChanges <= this.maxBuffered / 2) {
      this.paused = false;
      this.source.resume();
    }
    return part;
  }

  private onMessage(message: DecodedMessage): void {
    if (this.failure || this.ended) return;
    let part: PacketPart | null;
    try {
      part = this.assembler.push(message);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (!part) return;
    this.queue.push(part);
    this.stats.lastVersion = part.header.version;
    this.stats.bufferedChanges += part.changes.length;
    if (this.stats.bufferedChanges > this.stats.peakBufferedChanges) {
      this.stats.peakBufferedChanges = this.stats.bufferedChanges;
    }
    if (!this.paused && this.stats.bufferedChanges >= this.maxBuffered) {
      this.paused = true;
      this.stats.pauses += 1;
      this.source.pause();
    }
    this.notify();
  }

  private onWalEnd(walEnd: Lsn): void {
    if (this.failure || this.ended || this.assembler.inTransaction) return;
    this.idle = {
      version: this.assembler.lastVersion,
      lsn: lsnBefore(walEnd),
    };
  }

  private fail(error: Error): void {
    if (this.failure || this.ended) return;
    this.failure = error;
    this.notify();
    void this.source.stop().catch(() => undefined);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
