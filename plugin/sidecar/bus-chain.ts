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
  /** Where the message before the break stood, and what came instead of its successor. */
  readonly after: PartPosition;
  readonly found: PartPosition;
}

/** The bus's tail once checked: its last message that follows the chain, the chain itself (oldest first). */
export interface CheckedTail {
  readonly last: StoredPart;
  /** The messages walked that stay, oldest first, `last` at the end. */
  readonly chain: readonly StoredPart[];
  readonly repair: TailRepair | null;
  /** The sequences to remove ({@link removeTail}), newest first: interrupted, the bus still ends in the same break. */
  readonly removing: readonly number[];
  /** Messages the walk read before `last` (what resuming cost, for the log). */
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
function confirmedOn(message: StoredPart, confirmed: Lsn): boolean {
  return lsnToBigInt(message.part.header.lsn) < lsnToBigInt(confirmed);
}

/**
 * Whether the walk may stop at `previous`: the slot vouches for it, `current`
 * follows it, and `current` is past what the slot vouches for or ends a
 * packet at least the recorded head's version. A deposed publisher's stale
 * copies can follow each other below the head (or open the head's packet
 * without its end) while the chain breaks before them: stopping there would
 * leave the bus ending before the confirmed point for good.
 */
function anchors(
  previous: StoredPart,
  current: StoredPart,
  confirmed: Lsn,
  head: number,
  below: number,
): boolean {
  if (!confirmedOn(previous, confirmed) || !follows(previous, current)) return false;
  return (
    !confirmedOn(current, confirmed) ||
    (current.position.final !== null && current.position.version >= head) ||
    below >= STALE_LIMIT
  );
}

/**
 * Checks the chain of messages the slot does not vouch for, from the end of
 * the bus back, and says which to remove: from its first break to the end
 * ({@link removeTail}; the caller first checks what stays reaches the slot). The
 * publisher confirms only messages acknowledged with every one before them,
 * so whatever follows the slot's confirmed point is re-derived from the WAL;
 * but once one of its messages was refused (a deposed publisher's took its
 * place), later ones are stored behind the foreign one and agents see a gap.
 * The walk goes back over what is not confirmed, and past messages that do
 * not follow their predecessor (not ours), to the first confirmed one that
 * does: it is bounded by the unconfirmed tail (what the publisher published
 * in the last `bus.serverSyncInterval` and a bit, as the slot trails the
 * acks by that) plus the foreign messages in it.
 */
export async function checkTail(
  log: PacketLog,
  last: StoredPart,
  confirmed: Lsn,
  /** The recorded head's version: the slot is never confirmed past it. */
  head: number,
): Promise<CheckedTail> {
  const walked: StoredPart[] = [last];
  let current = last;
  /** Confirmed messages below the head walked past so far. */
  let below = 0;
  for (;;) {
    const previous = await log.before(current.sequence);
    if (!previous) break;
    walked.push(previous);
    if (anchors(previous, current, confirmed, head, below)) break;
    if (confirmedOn(current, confirmed) && current.position.version < head) below++;
    current = previous;
  }
  const chain = walked.reverse();
  const broken = chain.findIndex(
    (message, i) => i > 0 && !follows(chain[i - 1] as StoredPart, message),
  );
  const read = walked.length - 1;
  if (broken < 0) return { last, chain, repair: null, removing: [], walked: read };
  const removed = chain.slice(broken);
  const kept = chain.slice(0, broken);
  const before = kept[kept.length - 1] as StoredPart;
  return {
    last: before,
    chain: kept,
    repair: {
      from: (removed[0] as StoredPart).sequence,
      to: last.sequence,
      after: before.position,
      found: (removed[0] as StoredPart).position,
    },
    removing: removed.map((message) => message.sequence).reverse(),
    walked: read,
  };
}

/** Removes the messages `tail` says break the chain. */
export async function removeTail(log: PacketLog, tail: CheckedTail): Promise<void> {
  for (const sequence of tail.removing) await log.remove(sequence);
}
