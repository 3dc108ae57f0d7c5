import type { Logger } from 'pino';
import { LockstepError } from '../ports/lockstep-error.js';
import type { PacketFeed, PacketReader } from '../ports/packet-reader.js';
import type { BusPiece } from '../protocol/change-fragments.js';
import type { PacketPart } from '../protocol/packet.js';
import { PacketPartFormatError } from '../protocol/packet-part-codec.js';
import type { ReplicaPosition } from '../replica/replica-target.js';
import { Signal } from '../support/signal.js';
import type { AgentWindow } from './agent-window.js';
import { type PartCheck, PartSequence } from './part-sequence.js';

/** What the pump needs of its surroundings. */
export interface BusPumpHost {
  readonly replica: string;
  readonly log: Logger;
  /** The replica's durable position as its agent last read it (null until it did). */
  position(): ReplicaPosition | null;
  /**
   * The pump cannot go on: the agent must stop with this error, once the
   * replica applied `through` when given (what the pump read before it).
   */
  fatal(error: LockstepError, through?: number): void;
  /** Each part read, before the replica machine sees it (migration work the stream vouches for). */
  seen?(part: PacketPart): void;
  /** Reading is stuck for now (a chain the bus breaks): the replica's error until it applies again. */
  stalled?(problem: string, fix: string): void;
}

/**
 * The bus holds a message where another belongs. Nothing is skipped: reading
 * starts again from the replica's position. Not fatal: the publisher removes
 * a tail that breaks the chain (a deposed publisher's message took the
 * place of one of its own) before it publishes again, and re-derives it.
 */
export class BusGapError extends Error {
  constructor(
    readonly expected: { version: number; index: number },
    readonly found: { version: number; index: number },
  ) {
    super(
      `the bus holds version ${found.version} part ${found.index} where version ${expected.version} part ${expected.index} belongs`,
    );
    this.name = 'BusGapError';
  }
}

/** First and longest delay before the bus is read again after a failure (ms). */
const RETRY_MS = [500, 10_000] as const;

/**
 * Reads the packet log into the agent's window, from the version after the
 * replica's own, again from an older one when the agent asks for a rewind.
 * It reads only while the window has room and the agent is active, so what
 * the bus holds is read at the pace the replica applies it (back-pressure).
 */
export class BusPump {
  private rewindTo: ReplicaPosition | null = null;
  private stopping = false;
  private readonly interrupt = new Signal();
  /** Whether the current read took a part (a failure after progress retries soon). */
  private took = false;
  /** Wakes a pump waiting for the replica's first position. */
  private readonly nudged = new Signal();

  constructor(
    private readonly packets: PacketReader,
    private readonly window: AgentWindow,
    private readonly host: BusPumpHost,
  ) {}

  /** The agent needs packets no longer in the window: the log is read again after `position`. */
  requestRewind(position: ReplicaPosition): void {
    if (this.rewindTo && this.rewindTo.version <= position.version) return;
    this.host.log.info(
      { replica: this.host.replica, version: position.version, event: 'rewind' },
      'replica needs packets no longer in memory',
    );
    this.rewindTo = position;
    this.interrupt.notify();
  }

  stop(): void {
    this.stopping = true;
    this.interrupt.notify();
    this.nudged.notify();
  }

  /** The agent's state changed: a pump waiting for its position looks again. */
  nudge(): void {
    this.nudged.notify();
  }

  /** Reads until {@link stop} or a fatal error; reconnects after failures of the bus. */
  async run(): Promise<void> {
    let delay: number = RETRY_MS[0];
    while (!this.stopping) {
      const from = await this.startPoint();
      if (from === null) return;
      this.rewindTo = null;
      let feed: PacketFeed;
      try {
        feed = await this.packets.readFrom(from.version + 1, this.host.replica);
      } catch (error) {
        if (this.failed(error)) return;
        await this.interrupt.wait(delay);
        delay = Math.min(delay * 2, RETRY_MS[1]);
        continue;
      }
      this.window.reset();
      this.host.log.info(
        { replica: this.host.replica, version: from.version, event: 'bus-reading' },
        'reading packets from the bus',
      );
      this.took = false;
      try {
        await this.pumpParts(feed, from.version + 1);
        delay = RETRY_MS[0];
      } catch (error) {
        if (this.failed(error)) return;
        // A gap met again before anything was taken (the publisher not back yet) is read less and less often.
        if (!(error instanceof BusGapError) || this.took) delay = RETRY_MS[0];
        await this.interrupt.wait(delay);
        if (error instanceof BusGapError) delay = Math.min(delay * 2, RETRY_MS[1]);
      } finally {
        await feed.close().catch(() => undefined);
      }
    }
  }

  /** Logs a failure; true when it is fatal (the agent stops), false when reading is retried. */
  private failed(error: unknown): boolean {
    if (error instanceof LockstepError) {
      this.host.fatal(error);
      return true;
    }
    if (error instanceof BusGapError) {
      const { expected, found } = error;
      this.host.log.warn(
        { replica: this.host.replica, expected, found, event: 'bus-gap' },
        'the bus breaks the chain of packets: reading again from the replica position',
      );
      this.host.stalled?.(
        error.message,
        'none while the publisher runs: it removes the broken tail when it resumes; should it persist, check `lockstep run` is running and its log (bus-tail-repaired, bus-refused)',
      );
      return false;
    }
    this.host.log.warn(
      { replica: this.host.replica, err: (error as Error).message, event: 'bus-failed' },
      'cannot read the bus: retrying',
    );
    return false;
  }

  /** Where reading starts: a rewind asked for, else the replica's position once its agent read it. */
  private async startPoint(): Promise<ReplicaPosition | null> {
    for (;;) {
      if (this.stopping) return null;
      const point = this.rewindTo ?? this.host.position();
      if (point) return point;
      await this.nudged.wait(1_000);
    }
  }

  /** Moves parts from the feed into the window until interrupted; a change's fragments go in joined. */
  private async pumpParts(feed: PacketFeed, first: number): Promise<void> {
    const sequence = new PartSequence(first);
    const interrupted = () => this.stopping || this.rewindTo !== null;
    while (!interrupted()) {
      // Nothing is read while the window is full or the agent is away: the bus keeps it meanwhile.
      while (!interrupted() && !(this.window.active && this.window.hasRoom()))
        await this.interrupt.race(this.window.changed(), undefined);
      if (interrupted()) return;
      const next = await this.interrupt.race(feed.next(), null);
      if (next === null) return;
      const checked = this.checked(sequence, next, feed.changesThrough?.() ?? null);
      if (checked.verdict === 'gap') throw this.gap(sequence.expected, next);
      if (checked.verdict !== 'take') continue;
      this.took = true;
      this.host.seen?.(checked.part);
      this.window.push(checked.part);
    }
  }

  /** `sequence`'s verdict on `piece`; fragments that do not join into a change stop the agent. */
  private checked(sequence: PartSequence, piece: BusPiece, through: number | null): PartCheck {
    try {
      return sequence.check(piece, through);
    } catch (error) {
      if (!(error instanceof PacketPartFormatError)) throw error;
      throw new LockstepError({
        node: this.host.replica,
        problem: `the fragments of a change in packet ${piece.header.version} ending at part ${piece.index} are ${error.message}`,
        fix: 'run a lockstep agent of the same version as the publishing lockstep run',
        cause: error,
      });
    }
  }

  private gap(expected: { version: number; index: number }, part: BusPiece): BusGapError {
    return new BusGapError(expected, { version: part.header.version, index: part.index });
  }
}
