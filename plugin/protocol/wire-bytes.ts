import { lsnFromHalves, lsnHalves } from './lsn.js';
import type { PacketHeader, Phase } from './packet.js';

/**
 * The byte-level pieces of the bus's message bodies: integers big-endian,
 * strings a u32 byte length and UTF-8, and the head every body starts with.
 */

const PHASES: readonly (Phase | null)[] = [null, 'one', 'two'];

/** A body that is not a packet part this version can read. */
export class PacketPartFormatError extends Error {
  constructor(problem: string) {
    super(`not a packet part lockstep can read: ${problem}`);
    this.name = 'PacketPartFormatError';
  }
}

/** Appends to a growing buffer. */
export class Writer {
  private buffer: Buffer;
  private at = 0;

  constructor(initial = 4096) {
    this.buffer = Buffer.allocUnsafe(initial);
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }
  u8(value: number): void {
    this.room(1);
    this.buffer[this.at++] = value;
  }
  u32(value: number): void {
    this.room(4);
    this.at = this.buffer.writeUInt32BE(value, this.at);
  }
  i32(value: number): void {
    this.room(4);
    this.at = this.buffer.writeInt32BE(value, this.at);
  }
  /** A safe integer as 8 bytes. */
  u53(value: number): void {
    this.room(8);
    this.at = this.buffer.writeBigUInt64BE(BigInt(value), this.at);
  }
  text(value: string): void {
    const length = Buffer.byteLength(value);
    this.room(4 + length);
    this.at = this.buffer.writeUInt32BE(length, this.at);
    this.at += this.buffer.write(value, this.at, 'utf8');
  }
  /** Appends `view`'s bytes. */
  bytes(view: Uint8Array): void {
    this.room(view.length);
    this.buffer.set(view, this.at);
    this.at += view.length;
  }
  nullableText(value: string | null): void {
    this.u8(value === null ? 0 : 1);
    if (value !== null) this.text(value);
  }
  done(): Buffer {
    return this.buffer.subarray(0, this.at);
  }
}

/** Reads what {@link Writer} wrote; every read checks the bounds. */
export class Reader {
  private at = 0;
  constructor(private readonly buffer: Buffer) {}

  private need(bytes: number): number {
    if (this.at + bytes > this.buffer.length)
      throw new PacketPartFormatError(`it ends at byte ${this.buffer.length}, inside a field`);
    const from = this.at;
    this.at += bytes;
    return from;
  }
  u8(): number {
    return this.buffer[this.need(1)] as number;
  }
  u32(): number {
    return this.buffer.readUInt32BE(this.need(4));
  }
  i32(): number {
    return this.buffer.readInt32BE(this.need(4));
  }
  u53(): number {
    const value = this.buffer.readBigUInt64BE(this.need(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new PacketPartFormatError('a number too big');
    return Number(value);
  }
  text(): string {
    const length = this.u32();
    const from = this.need(length);
    return this.buffer.toString('utf8', from, from + length);
  }
  nullableText(): string | null {
    return this.flag() ? this.text() : null;
  }
  flag(): boolean {
    const value = this.u8();
    if (value > 1) throw new PacketPartFormatError(`flag ${value}`);
    return value === 1;
  }
  /** One of `choices` by its index. */
  pick<T>(choices: readonly T[], what: string): T {
    const index = this.u8();
    if (index >= choices.length) throw new PacketPartFormatError(`unknown ${what} ${index}`);
    return choices[index] as T;
  }
  /** The next `length` bytes, as a view of the buffer (not a copy). */
  bytes(length: number): Buffer {
    const from = this.need(length);
    return this.buffer.subarray(from, from + length);
  }
  /** Where reading is: an offset for {@link since}. */
  get offset(): number {
    return this.at;
  }
  /** The bytes read since `from` (an earlier {@link offset}), as a view of the buffer. */
  since(from: number): Buffer {
    return this.buffer.subarray(from, this.at);
  }
  /** Moves past `count` bytes without reading them. */
  skip(count: number): void {
    this.need(count);
  }
  /** The bytes not read yet, as a view of the buffer (not a copy). */
  rest(): Buffer {
    const from = this.at;
    this.at = this.buffer.length;
    return this.buffer.subarray(from);
  }
  end(): void {
    if (this.at !== this.buffer.length)
      throw new PacketPartFormatError(`${this.buffer.length - this.at} bytes after its end`);
  }
}

/** What starts every message body: its format, the packet's header, the message's index, its phase. */
export interface PartHead {
  readonly header: PacketHeader;
  readonly index: number;
  readonly final: { readonly phase: Phase } | null;
}

export function writePartHead(w: Writer, format: number, head: PartHead): void {
  w.u8(format);
  const [high, low] = lsnHalves(head.header.lsn);
  w.u53(head.header.version);
  w.u32(high);
  w.u32(low);
  w.u32(head.header.xid);
  // Read once: a header may compute its commit time in a getter.
  w.text(head.header.commitTime);
  w.u32(head.index);
  w.u8(PHASES.indexOf(head.final?.phase ?? null));
}

/** The head after the format byte (read by the caller). */
export function readPartHead(r: Reader): PartHead {
  const version = r.u53();
  const lsn = lsnFromHalves(r.u32(), r.u32());
  const header: PacketHeader = { version, lsn, xid: r.u32(), commitTime: r.text() };
  const index = r.u32();
  const phase = r.pick(PHASES, 'phase');
  return { header, index, final: phase ? { phase } : null };
}
