import type { PacketLog, StoredPart } from '../ports/packet-bus.js';
import { addedChanges, fragmentFollows, isFragment } from '../protocol/change-fragments.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';
import { firstVersion, type PartPosition } from '../protocol/packet-bus-names.js';
import { PUBLISH_LIMITS } from './publish-window.js';

/**
 * How many confirmed messages below the head the walk looks past: a deposed
 * publisher stores at most its window of stale copies. More (a leader behind
 * what it acknowledged, whose bus ends before the head) is not a tail to
 * repair, and walking the whole stream for it would cost a request a message.
 */
const STALE_LIMIT = PUBLISH_LIMITS.messages;

/** Messages removed from the bus because they did not follow the message before them. */
export interface TailRepair {
  /** The first sequence removed: the message that broke the chain. */
  readonly from: number;
  /** The last sequence removed. */
  readonly to: number;
  /** Where the message before the break stood (null: the break is the oldest message), and what came instead of its successor. */
  readonly after: PartPosition | null;
  readonly found: PartPosition;
  /** Set when the break is a message that follows but lacks this publisher's signature. */
  readonly unsigned?: true;
}

/**
 * What the walk read of the packet a message is part of: its first part and
 * the message before that (which ends the packet before), when the walk got
 * that far back. Resuming inside a packet needs the one before it.
 */
export interface PacketStart {
  readonly first: StoredPart | null;
  readonly before: StoredPart | null;
}

/** The bus's tail once checked: its last message that follows the chain, where its packet starts. */
export interface CheckedTail {
  /** Null when every message on the bus is removed: the break is the oldest one. */
  readonly last: StoredPart | null;
  /** The start of `last`'s packet, as far as the walk read it (nothing else walked is kept). */
  readonly start: PacketStart | null;
  readonly repair: TailRepair | null;
  /** The sequences to remove ({@link removeTail}), newest first: interrupted, the bus still ends in the same break. */
  readonly removing: readonly number[];
  /** Messages the walk read before the bus's last one (what resuming cost, for the log). */
  readonly walked: number;
}

/**
 * Whether `next` may follow `previous` in the packet stream, as agents read
 * it (part-sequence.ts): the next part of the same packet, or the first one
 * (alone or opening a message of several whole packets) of the next version.
 * Within a packet the count of changes must add up and fragments go on at
 * the byte they stopped at: a deposed publisher that cut the same packet
 * differently stores messages whose indexes follow but whose content does not.
 */
export function follows(previous: StoredPart, next: StoredPart): boolean {
  const [before, after] = [previous.position, next.position];
  if (!before.final)
    return (
      after.first === undefined &&
      after.version === before.version &&
      after.part === before.part + 1 &&
      after.changes === before.changes + addedChanges(next.part) &&
      fragmentFollows(previous.part, next.part)
    );
  if (after.part !== 0 || firstVersion(after) !== before.version + 1) return false;
  if (after.first !== undefined && after.final === null) return false;
  // The message's last packet starts here (or is whole): its count is its own.
  return (
    after.changes === addedChanges(next.part) && (!isFragment(next.part) || next.part.offset === 0)
  );
}

/** The message's packet is confirmed on the slot (positions name a commit, the slot is confirmed to one past it). */
export function confirmedOn(message: StoredPart, confirmed: Lsn): boolean {
  return lsnToBigInt(message.part.header.lsn) < lsnToBigInt(confirmed);
}

/**
 * Whether the slot vouches for `message`: confirmed on it, and of at most
 * the recorded head's version. The header's LSN alone is the sender's word
 * (a forger copies one the slot is past); a packet the slot confirmed was
 * acknowledged before the head was recorded at it, so its version is not
 * past the head's.
 */
function slotVouches(message: StoredPart, confirmed: Lsn, head: number): boolean {
  return confirmedOn(message, confirmed) && message.position.version <= head;
}

/**
 * Whether `message` is this publisher's: `newer`, the message after it and
 * known to be the publisher's (`newerOurs`), names its chain digest (one
 * SHA-256), else its own signature checks out (an Ed25519 verify). The
 * digest is signed with the rest of `newer` and covers `message`'s signed
 * bytes (its sequence among them): a foreign message where the publisher's
 * stood, or a copy of one of the publisher's at another sequence, never
 * matches it, so the chain breaks there as before and the check falls back
 * to the signature.
 */
export function ours(message: StoredPart, newer: StoredPart, newerOurs: boolean): boolean {
  if (newerOurs && newer.chained !== undefined && newer.chained === message.digest()) return true;
  return message.signed();
}

/**
 * Whether `message` may stay on the bus as the publisher's own: this
 * publisher's key signed it (`own`, as {@link ours} found it), or the slot
 * vouches for it (a packet of the
 * older lockstep, from before signing, or of a former key pair: removing it
 * would lose it) and it does not come after a signed one (those older packets
 * all precede the first one this key signed: a bus that lost its tail ends
 * below the head, and a forger appending there could otherwise name an LSN
 * and version the slot covers). Any client allowed on the subject can store
 * a message that follows the chain; one not vouched for is removed and
 * re-derived (signed) from the slot, as a deposed publisher's is.
 */
export function vouched(
  message: StoredPart,
  previous: StoredPart | null,
  confirmed: Lsn,
  head: number,
  own: boolean = message.signed(),
): boolean {
  if (own) return true;
  // Not ours, so its digest vouches for nothing before it: `previous` is verified.
  return slotVouches(message, confirmed, head) && previous?.signed() !== true;
}

/**
 * Whether the walk may stop at `previous`: the slot vouches for it, `current`
 * follows it, and `current` is past what the slot vouches for or ends a
 * packet at least the recorded head's version. A deposed publisher's stale
 * copies can follow each other below the head (or open the head's packet
 * without its end) while the chain breaks before them: stopping there would
 * leave the bus ending before the confirmed point for good.
 */
export function anchors(
  previous: StoredPart,
  current: StoredPart,
  confirmed: Lsn,
  head: number,
  below: number,
): boolean {
  // The walk keeps `previous` unchecked: the slot must vouch for it as {@link vouched} asks.
  if (!slotVouches(previous, confirmed, head) || !follows(previous, current)) return false;
  return (
    !confirmedOn(current, confirmed) ||
    (current.position.final !== null && current.position.version >= head) ||
    below >= STALE_LIMIT
  );
}

/**
 * Checks the chain of messages the slot does not vouch for, from the end of
 * the bus back, and says which to remove: from its first break (a message
 * that does not follow, or is not signed: {@link vouched}) to the end
 * ({@link removeTail}; the caller first checks what stays reaches the slot). The
 * publisher confirms only messages acknowledged with every one before them,
 * so whatever follows the slot's confirmed point is re-derived from the WAL;
 * but once one of its messages was refused (a deposed publisher's took its
 * place), later ones are stored behind the foreign one and agents see a gap.
 * The walk goes back over what is not confirmed, and past messages that do
 * not follow their predecessor (not ours), to the first confirmed one that
 * does: it is bounded by the unconfirmed tail (what the publisher published
 * in the last `bus.serverSyncInterval` and a bit, as the slot trails the
 * acks by that) plus the foreign messages in it. That is minutes of
 * messages under load (100k in bench:bus-resume): they are read many to a
 * request, and only their sequences and the start of the last packet that
 * stays are kept, breaks noted as the walk passes them. Only the newest
 * one's signature is verified where the chain holds ({@link ours}): an older
 * one costs a SHA-256, not an Ed25519 verify.
 */
export async function checkTail(
  log: PacketLog,
  last: StoredPart,
  confirmed: Lsn,
  /** The recorded head's version: the slot is never confirmed past it. */
  head: number,
): Promise<CheckedTail> {
  /** Sequences walked, newest first (numbers only: a message may be half a megabyte). */
  const sequences = [last.sequence];
  let kept: KeptTail | null = new KeptTail(last);
  let repair: TailRepair | null = null;
  /** How many of `sequences` (from the newest) the break removes. */
  let removing = 0;
  const reader = new BackReader(log, last.sequence);
  let current = last;
  /** Whether `current` is this publisher's: the newest verified, the others by the chain where it holds. */
  let own = last.signed();
  /** Confirmed messages below the head walked past so far. */
  let below = 0;
  for (;;) {
    const previous = await reader.previous();
    // The oldest break counts: what stays ends before it, whatever came after. The bus's
    // oldest message follows nothing (emptied by retention or a power loss): its signature
    // or the slot still vouches for it, else a lone forged packet would be resumed from.
    const chained = !previous || follows(previous, current);
    if (!chained || !vouched(current, previous, confirmed, head, own)) {
      removing = sequences.length;
      repair = {
        from: current.sequence,
        to: last.sequence,
        after: previous?.position ?? null,
        found: current.position,
        ...(chained ? { unsigned: true as const } : {}),
      };
      kept = previous ? new KeptTail(previous) : null;
    } else if (previous) kept?.reached(previous);
    if (!previous) break;
    sequences.push(previous.sequence);
    if (anchors(previous, current, confirmed, head, below)) break;
    if (confirmedOn(current, confirmed) && current.position.version < head) below++;
    own = ours(previous, current, own);
    current = previous;
  }
  return {
    last: kept?.last ?? null,
    start: kept?.start() ?? null,
    repair,
    removing: sequences.slice(0, removing),
    walked: sequences.length - 1,
  };
}

/** Reads the bus back from a sequence, many messages a request ({@link PacketLog.readBack}). */
class BackReader {
  /** Newest first; `next` the index of the one {@link previous} gives next. */
  private read: StoredPart[] = [];
  private next = 0;

  constructor(
    private readonly log: PacketLog,
    /** The sequence the walk stands on: what it reads next is before it. */
    private at: number,
  ) {}

  /** The message before the last one given (removed ones skipped); null when none is left. */
  async previous(): Promise<StoredPart | null> {
    if (this.next >= this.read.length) {
      this.read = await this.log.readBack(this.at);
      this.next = 0;
    }
    const message = this.read[this.next++];
    if (!message) return null;
    this.at = message.sequence;
    return message;
  }
}

/** The last message that stays, and of what the walk reads further back, only its packet's start. */
class KeptTail {
  private first: StoredPart | null;
  private before: StoredPart | null = null;
  /** Messages read past `last`. */
  private read = 0;

  constructor(readonly last: StoredPart) {
    this.first = last.position.part === 0 ? last : null;
  }

  /** The walk read `message`, the one before those it read so far. */
  reached(message: StoredPart): void {
    this.read++;
    const part = this.last.position.part;
    if (this.read === part) this.first = message;
    else if (this.read === part + 1) this.before = message;
  }

  start(): PacketStart {
    return { first: this.first, before: this.before };
  }
}

/** Removes the messages `tail` says break the chain. */
export async function removeTail(log: PacketLog, tail: CheckedTail): Promise<void> {
  for (const sequence of tail.removing) await log.remove(sequence);
}
