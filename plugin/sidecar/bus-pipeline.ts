import type { PacketAppender, PacketLog, StoredPart } from '../ports/packet-bus.js';
import type { PacketHeader } from '../protocol/index.js';
import { Signal } from '../support/signal.js';
import type { BusMessage } from './bus-messages.js';
import { type PublishLimits, PublishWindow } from './publish-window.js';

/**
 * Publishes messages without waiting for each acknowledgement: the
 * {@link PublishWindow} bounds what is in flight and says which packets are
 * whole on the bus; the appender makes each message follow the one before.
 */
export class BusPipeline {
  private readonly window: PublishWindow<readonly PacketHeader[]>;
  private readonly appender: PacketAppender;
  private readonly progress = new Signal();
  private whole: PacketHeader[] = [];

  constructor(
    log: PacketLog,
    after: number,
    limits?: PublishLimits,
    /** Called as each message is acknowledged. */
    private readonly onStored?: (message: BusMessage) => void,
    /** The last message kept on the bus: the first one sent chains to it. */
    kept?: StoredPart,
  ) {
    this.window = new PublishWindow(after, limits);
    this.appender = log.appender(after, kept);
  }

  /** The first failure; nothing is sent after it. */
  get failure(): Error | null {
    return this.window.failure;
  }

  /** True when every message sent is stored and taken off the window. */
  get empty(): boolean {
    return this.window.empty;
  }

  /** Sends `message` once there is room (`packets`: those it ends); once failed, sends nothing. */
  async send(message: BusMessage, packets: readonly PacketHeader[]): Promise<void> {
    const bytes = message.body.length;
    while (!this.window.hasRoom(bytes)) {
      if (this.window.failure) return;
      await this.progress.wait();
    }
    const sequence = this.window.send(bytes, packets.length > 0 ? packets : null);
    this.appender.append(message.body, message.position).then(
      (at) => {
        for (const stored of this.window.acked(sequence, at)) this.whole.push(...stored);
        this.progress.notify();
        this.onStored?.(message);
      },
      (error: Error) => {
        this.window.failed(sequence, error);
        this.progress.notify();
      },
    );
  }

  /** Packets whole on the bus since the last call, oldest first. */
  takeWhole(): PacketHeader[] {
    const whole = this.whole;
    this.whole = [];
    return whole;
  }

  /** Resolves at the next acknowledgement or failure, or after `timeoutMs`. */
  changed(timeoutMs: number): Promise<void> {
    return this.progress.wait(timeoutMs);
  }

  /** Waits until every message sent is stored or failed: nothing of this pipeline lands after it. */
  async settle(): Promise<void> {
    while (!this.window.settled) await this.progress.wait();
  }
}
