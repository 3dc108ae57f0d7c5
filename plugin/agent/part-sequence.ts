import {
  addedChanges,
  type BusPiece,
  ChangeJoin,
  isFragment,
  type PartFragment,
} from '../protocol/change-fragments.js';
import type { Change, PacketHeader, PacketPart } from '../protocol/index.js';

/** What to do with the next message read from the log. */
export type PartVerdict = 'take' | 'joining' | 'duplicate' | 'gap';

/** A judged message: a part to take (whole, or the change its last fragment completes), or why not. */
export type PartCheck =
  | { readonly verdict: 'take'; readonly part: PacketPart }
  | { readonly verdict: Exclude<PartVerdict, 'take'> };

/**
 * Checks that messages read from the log follow each other: the messages of
 * a packet in order, then the first one of the next version. A message
 * already passed (a packet stored twice) is a duplicate; anything else out of
 * order, a fragment included, is a gap, never skipped. The fragments of a
 * change are joined into one part. Parts taken are numbered 0, 1, … within
 * their packet and share its first part's header object, as they do when
 * they come from the primary stream.
 */
export class PartSequence {
  private version: number;
  /** The index of the packet's next message. */
  private index = 0;
  /** Parts of the packet taken so far: the next one's number. */
  private taken = 0;
  private header: PacketHeader | null = null;
  /** The change whose fragments are being joined. */
  private join: ChangeJoin | null = null;
  /** Changes of the packet through the last message taken (what its `Lockstep-Changes` says). */
  private counted = 0;

  /** @param first the version whose first part comes next */
  constructor(first: number) {
    this.version = first;
  }

  /** The version and message index expected next. */
  get expected(): { version: number; index: number } {
    return { version: this.version, index: this.index };
  }

  /**
   * Judges the next message; throws `PacketPartFormatError` when joined
   * fragments are not a change. `through`: the packet's count of changes
   * through this message as the log says it (null: not said): a count that
   * does not add up is a gap, as a message cut by another publisher is.
   */
  check(piece: BusPiece, through: number | null = null): PartCheck {
    const { version } = piece.header;
    if (version < this.version || (version === this.version && piece.index < this.index))
      return { verdict: 'duplicate' };
    if (version !== this.version || piece.index !== this.index) return { verdict: 'gap' };
    const counted = (piece.index === 0 ? 0 : this.counted) + addedChanges(piece);
    if (through !== null && through !== counted) return { verdict: 'gap' };
    this.counted = counted;
    if (piece.index === 0) this.header = piece.header;
    if (isFragment(piece)) return this.fragment(piece);
    // A part where the next fragment of a change belongs.
    if (this.join) return { verdict: 'gap' };
    return this.take(piece, piece.changes);
  }

  private fragment(piece: PartFragment): PartCheck {
    this.join ??= new ChangeJoin(piece.total);
    if (!this.join.follows(piece)) return { verdict: 'gap' };
    if (!this.join.add(piece)) {
      this.index++;
      return { verdict: 'joining' };
    }
    const changes = this.join.changes();
    this.join = null;
    return this.take(piece, changes);
  }

  private take(piece: BusPiece, changes: readonly Change[]): PartCheck {
    const header = this.header ?? piece.header;
    const index = this.taken++;
    const part =
      !isFragment(piece) && piece.header === header && piece.index === index
        ? piece
        : { header, index, changes, final: piece.final };
    if (piece.final) {
      this.version++;
      this.index = 0;
      this.taken = 0;
      this.header = null;
    } else this.index++;
    return { verdict: 'take', part };
  }
}
