/**
 * Splits the bytes a server sends into protocol messages (a type byte, an
 * int32 length counting itself, the body) where they lie: a message that fits
 * in a socket read is handed over as a range of that read, with no copy and no
 * object per message. A message cut between reads is joined once it is whole:
 * only its own bytes are copied (a large value arriving in many reads once, not
 * once per read), and the rest of the read that completed it is read in place.
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
  /** What follows {@link buf} (the rest of the read that completed a joined message). */
  private after: Buffer | null = null;
  /** The start of an incomplete message, waiting for `needed` bytes in all. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private needed = 0;

  /** The bytes not handed over yet (a partial message included), or null; leaves nothing behind. */
  takeRest(): Buffer | null {
    const rest = [this.buf.subarray(this.pos)];
    if (this.after) rest.push(this.after);
    rest.push(...this.held);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.after = null;
    this.held = [];
    this.heldBytes = 0;
    const bytes = Buffer.concat(rest);
    return bytes.length > 0 ? bytes : null;
  }

  /** Adds bytes read from the socket. */
  push(chunk: Buffer): void {
    if (this.held.length === 0) {
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
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    while (this.held.length > 0 && this.heldBytes >= this.needed) this.join();
  }

  /** Moves to the next whole message; false when more bytes must be pushed first. */
  next(): boolean {
    if (this.held.length > 0) return false;
    if (this.pos >= this.buf.length && this.after) {
      this.buf = this.after;
      this.after = null;
      this.pos = 0;
    }
    const { buf, pos } = this;
    const available = buf.length - pos;
    if (available >= 5) {
      const size = 1 + buf.readUInt32BE(pos + 1);
      if (available >= size) {
        this.type = buf[pos] as number;
        this.start = pos + 5;
        this.end = pos + size;
        this.pos = this.end;
        return true;
      }
      this.needed = size;
    } else this.needed = 5;
    if (available > 0) {
      this.held = [buf.subarray(pos)];
      this.heldBytes = available;
    }
    this.pos = buf.length;
    return false;
  }

  /** Joins the held pieces' first `needed` bytes; what is left of the last piece is read after them. */
  private join(): void {
    const joined = Buffer.allocUnsafe(this.needed);
    let filled = 0;
    let rest: Buffer | null = null;
    for (const piece of this.held) {
      const take = Math.min(piece.length, this.needed - filled);
      piece.copy(joined, filled, 0, take);
      filled += take;
      if (take < piece.length) rest = piece.subarray(take);
    }
    if (this.needed === 5) {
      // Only the header was whole: now the message's size is known.
      const size = 1 + joined.readUInt32BE(1);
      if (size > 5) {
        this.held = rest ? [joined, rest] : [joined];
        this.heldBytes = 5 + (rest?.length ?? 0);
        this.needed = size;
        return;
      }
    }
    this.held = [];
    this.heldBytes = 0;
    this.buf = joined;
    this.pos = 0;
    this.after = rest;
  }
}
