import type { PacketPart } from '../protocol/index.js';

/** What to do with the next part read from the log. */
export type PartVerdict = 'take' | 'duplicate' | 'gap';

/**
 * Checks that parts read from the log follow each other: the parts of a packet
 * in order, then the first part of the next version. A part already passed (a
 * packet stored twice) is a duplicate; anything else out of order is a gap,
 * never skipped. Parts of one packet share the first part's header object, as
 * they do when they come from the primary stream.
 */
export class PartSequence {
  private version: number;
  private index = 0;
  private header: PacketPart['header'] | null = null;

  /** @param first the version whose first part comes next */
  constructor(first: number) {
    this.version = first;
  }

  /** The version and part expected next. */
  get expected(): { version: number; index: number } {
    return { version: this.version, index: this.index };
  }

  /** Judges `part`; a taken part is returned with the packet's shared header. */
  check(part: PacketPart): { verdict: PartVerdict; part: PacketPart } {
    const { version } = part.header;
    if (version < this.version || (version === this.version && part.index < this.index))
      return { verdict: 'duplicate', part };
    if (version !== this.version || part.index !== this.index) return { verdict: 'gap', part };
    if (part.index === 0) this.header = part.header;
    const taken =
      part.index > 0 && this.header && part.header !== this.header
        ? { ...part, header: this.header }
        : part;
    if (part.final) {
      this.version++;
      this.index = 0;
      this.header = null;
    } else this.index++;
    return { verdict: 'take', part: taken };
  }
}
