/**
 * Splits the bytes a server sends into protocol messages (a type byte, an
 * int32 length counting itself, the body) where they lie: a message that fits
 * in a socket read is handed over as a range of that read, with no copy and no
 * object per message. A message cut between reads is filled, read by read,
 * into one buffer of its size allocated once its header is known: a large value
 * arriving in many reads is copied once, and each read can be freed as soon as
 * it is copied (holding the reads and joining them at the end kept two copies
 * alive). The rest of the read that completed it is read in place.
 */
export class BackendFrames {
  /** Type byte of the current message (after {@link next} returned true). */
  type = 0;
  /** The buffer holding the current message's body. */
  buf: Buffer = Buffer.alloc(0);
  /** Offset of the current message's body in {@link buf}. */
  start = 0;
  /** Offset just past the current message's body. */
  end = 0;

  private pos = 0;
  /** What follows {@link buf} (the rest of the read that completed a filled message). */
  private after: Buffer | null = null;
  /** The first bytes of a message whose header (5 bytes) is not whole yet. */
  private readonly head = Buffer.alloc(5);
  private headFilled = 0;
  /** A message being filled (header included), or null. */
  private pending: Buffer | null = null;
  private filled = 0;

  /** The bytes not handed over yet (a partial message included), or null; leaves nothing behind. */
  takeRest(): Buffer | null {
    const rest = [this.buf.subarray(this.pos)];
    if (this.after) rest.push(this.after);
    if (this.headFilled > 0) rest.push(this.head.subarray(0, this.headFilled));
    if (this.pending) rest.push(this.pending.subarray(0, this.filled));
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.after = null;
    this.headFilled = 0;
    this.pending = null;
    this.filled = 0;
    const bytes = Buffer.concat(rest);
    return bytes.length > 0 ? bytes : null;
  }

  /** Adds bytes read from the socket. */
  push(chunk: Buffer): void {
    if (this.pending !== null || this.headFilled > 0) {
      this.fill(chunk);
      return;
    }
    if (this.pos >= this.buf.length && this.after === null) {
      this.buf = chunk;
      this.pos = 0;
      return;
    }
    // Bytes not read yet (a read arriving before the last was consumed): keep the order.
    const unread = [this.buf.subarray(this.pos)];
    if (this.after) unread.push(this.after);
    this.buf = Buffer.concat([...unread, chunk]);
    this.pos = 0;
    this.after = null;
  }

  /** Moves to the next whole message; false when more bytes must be pushed first. */
  next(): boolean {
    if (this.pending !== null || this.headFilled > 0) return false;
    if (this.pos >= this.buf.length && this.after) {
      this.buf = this.after;
      this.after = null;
      this.pos = 0;
    }
    const { buf, pos } = this;
    const available = buf.length - pos;
    if (available >= 5) {
      const size = messageSize(buf, pos);
      if (available >= size) {
        this.type = buf[pos] as number;
        this.start = pos + 5;
        this.end = pos + size;
        this.pos = this.end;
        return true;
      }
      this.pending = Buffer.allocUnsafe(size);
      buf.copy(this.pending, 0, pos);
      this.filled = available;
    } else if (available > 0) {
      buf.copy(this.head, 0, pos);
      this.headFilled = available;
    }
    this.pos = buf.length;
    return false;
  }

  /** Copies `chunk` into the message being filled; once it is whole, it becomes {@link buf}. */
  private fill(chunk: Buffer): void {
    let at = 0;
    if (this.headFilled > 0) {
      const take = Math.min(5 - this.headFilled, chunk.length);
      chunk.copy(this.head, this.headFilled, 0, take);
      this.headFilled += take;
      at = take;
      if (this.headFilled < 5) return;
      this.headFilled = 0;
      this.pending = Buffer.allocUnsafe(messageSize(this.head, 0));
      this.head.copy(this.pending, 0, 0, 5);
      this.filled = 5;
    }
    const pending = this.pending as Buffer;
    const take = Math.min(pending.length - this.filled, chunk.length - at);
    chunk.copy(pending, this.filled, at, at + take);
    this.filled += take;
    at += take;
    if (this.filled < pending.length) return;
    this.pending = null;
    this.filled = 0;
    this.buf = pending;
    this.pos = 0;
    this.after = at < chunk.length ? chunk.subarray(at) : null;
  }
}

/**
 * The largest length field a server sends: it builds each message in a buffer
 * of at most 1 GiB (MaxAllocSize), plus the CopyData and XLogData headers.
 */
const MAX_LENGTH = 0x40000000 + 64;

/**
 * Type byte, length and body of the message whose header is at `at`; throws on
 * a length no server sends (garbage on the wire), rather than misframing the
 * bytes after it or allocating up to 4 GB for it.
 */
function messageSize(buf: Buffer, at: number): number {
  const length = buf.readUInt32BE(at + 1);
  if (length < 4 || length > MAX_LENGTH)
    throw new Error(`invalid protocol message length ${length} (type ${buf[at]})`);
  return 1 + length;
}
