/** How many messages, and how many bytes of them, may wait for JetStream's acknowledgement at once. */
export interface PublishLimits {
  readonly messages: number;
  readonly bytes: number;
}

/**
 * Enough to cover an R=3 round trip at tens of thousands of messages a
 * second on loopback or a LAN, small enough that a failure re-sends little.
 */
export const PUBLISH_LIMITS: PublishLimits = { messages: 128, bytes: 8 * 1024 * 1024 };

interface Slot<T> {
  /** The stream sequence the message must get: its predecessor's plus one. */
  readonly sequence: number;
  readonly bytes: number;
  /** Set on a packet's last message: the packet is whole on the bus once this is stored in order. */
  readonly packet: T | null;
  state: 'sent' | 'stored' | 'failed';
}

/**
 * The publisher's messages in flight (a pure machine: no I/O). Each message
 * follows the one sent before it, so its sequence is known when it is sent;
 * acknowledgements are taken in send order: a packet counts as on the bus
 * only once every message up to its last was stored where expected. The
 * first failure (refused, timed out, lost) ends the window: nothing from it
 * on is confirmed, whatever acknowledgements come later, and no message is
 * sent any more. The publisher then waits until every message sent has
 * settled and reads where the subject really ends.
 */
export class PublishWindow<T> {
  private readonly slots: Slot<T>[] = [];
  private bytes = 0;
  private pending = 0;
  /** The first failure, once there is one. */
  failure: Error | null = null;

  constructor(
    /** The subject's last sequence known stored, every message before it in order. */
    private stored: number,
    private readonly limits: PublishLimits = PUBLISH_LIMITS,
  ) {}

  /** The sequence the next message follows: the last one sent (stored or not). */
  get after(): number {
    return this.stored + this.slots.length;
  }

  /** The last sequence stored with everything before it. */
  get confirmed(): number {
    return this.stored;
  }

  /** True when no message waits for its outcome. */
  get settled(): boolean {
    return this.pending === 0;
  }

  /** True when nothing is in flight or confirmed-but-held: every message sent is accounted for. */
  get empty(): boolean {
    return this.slots.length === 0;
  }

  /** Whether a message of `bytes` may be sent now (one is always allowed into an empty window). */
  hasRoom(bytes: number): boolean {
    if (this.failure) return false;
    if (this.slots.length === 0) return true;
    return this.slots.length < this.limits.messages && this.bytes + bytes <= this.limits.bytes;
  }

  /** Records a message sent (`packet` on a packet's last one); returns the sequence it must get. */
  send(bytes: number, packet: T | null = null): number {
    if (this.failure) throw new Error('the publish window failed: nothing more may be sent');
    const sequence = this.after + 1;
    this.slots.push({ sequence, bytes, packet, state: 'sent' });
    this.bytes += bytes;
    this.pending++;
    return sequence;
  }

  /**
   * JetStream stored message `sequence` at `at`. Returns the packets that are
   * now whole on the bus, oldest first. A message stored anywhere else than
   * expected is a failure: the subject no longer ends where this window says.
   */
  acked(sequence: number, at: number): T[] {
    const slot = this.settle(sequence);
    if (!slot) return [];
    if (at !== sequence) {
      slot.state = 'failed';
      this.failure ??= new Error(`message ${sequence} was stored at sequence ${at}`);
    } else slot.state = 'stored';
    return this.advance();
  }

  /** Message `sequence` was not (or may not have been) stored. */
  failed(sequence: number, error: Error): void {
    const slot = this.settle(sequence);
    if (!slot) return;
    slot.state = 'failed';
    this.failure ??= error;
  }

  private settle(sequence: number): Slot<T> | null {
    const slot = this.slots[sequence - this.stored - 1];
    if (!slot || slot.sequence !== sequence || slot.state !== 'sent') return null;
    this.pending--;
    return slot;
  }

  /** Takes the stored messages at the front off the window: everything before them is stored too. */
  private advance(): T[] {
    const whole: T[] = [];
    while (this.slots[0]?.state === 'stored') {
      const slot = this.slots.shift() as Slot<T>;
      this.stored = slot.sequence;
      this.bytes -= slot.bytes;
      if (slot.packet !== null) whole.push(slot.packet);
    }
    return whole;
  }
}
