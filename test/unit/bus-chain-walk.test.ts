import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PacketLog, StoredPart } from '../../plugin/ports/packet-bus.js';
import type { Change } from '../../plugin/protocol/index.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import type { PartPosition } from '../../plugin/protocol/packet-bus-names.js';
import {
  anchors,
  type CheckedTail,
  checkTail,
  confirmedOn,
  follows,
  vouched,
} from '../../plugin/sidecar/bus-chain.js';
import { memoryPacketLog, signature } from '../support/memory-packet-log.js';

/**
 * The walk as it was before it kept only what resuming needs: every message
 * walked kept, the oldest break looked for once the walk ended (the bus's
 * oldest message too, when the walk reached it), the start of the last
 * packet read off the chain kept.
 */
async function walkKeepingAll(
  log: PacketLog,
  last: StoredPart,
  confirmed: Lsn,
  head: number,
): Promise<CheckedTail> {
  const walked: StoredPart[] = [last];
  let current = last;
  let below = 0;
  let reachedStart = false;
  for (;;) {
    const previous = await log.before(current.sequence);
    reachedStart = !previous;
    if (!previous) break;
    walked.push(previous);
    if (anchors(previous, current, confirmed, head, below)) break;
    if (confirmedOn(current, confirmed) && current.position.version < head) below++;
    current = previous;
  }
  const chain = walked.reverse();
  const breaks = (m: StoredPart, i: number) =>
    i > 0
      ? !follows(chain[i - 1] as StoredPart, m) ||
        !vouched(m, chain[i - 1] as StoredPart, confirmed, head)
      : reachedStart && !vouched(m, null, confirmed, head);
  const broken = chain.findIndex(breaks);
  const kept = broken < 0 ? chain : chain.slice(0, broken);
  const end = kept[kept.length - 1];
  const first = kept.length - 1 - (end?.position.part ?? 0);
  const removed = broken < 0 ? [] : chain.slice(broken);
  const found = removed[0];
  return {
    last: end ?? null,
    start: end ? { first: kept[first] ?? null, before: kept[first - 1] ?? null } : null,
    repair: found
      ? {
          from: found.sequence,
          to: last.sequence,
          after: end?.position ?? null,
          found: found.position,
          ...(!end || follows(end, found) ? { unsigned: true as const } : {}),
        }
      : null,
    removing: removed.map((m) => m.sequence).reverse(),
    walked: walked.length - 1,
  };
}

/** A message's content before it is given a sequence. */
interface Body {
  readonly position: PartPosition;
  readonly held: number;
  /** False for a foreign message (or one of the older lockstep): no valid signature. */
  readonly signed?: boolean;
}

const lsnOf = (version: number) => `0/${(version * 16).toString(16).toUpperCase()}` as Lsn;

function stored(
  sequence: number,
  { position, held, signed = true }: Body,
  chained?: string,
): StoredPart {
  const { version, part, final } = position;
  const header = { version, lsn: lsnOf(version), xid: version, commitTime: '2026-01-01' };
  return {
    sequence,
    position,
    ...signature(sequence, signed),
    ...(chained === undefined ? {} : { chained }),
    part: {
      header,
      index: part,
      changes: Array.from({ length: held }, () => ({}) as Change),
      final: final ? { phase: 'one' } : null,
    },
  };
}

/** Packets 1, 2, … each cut into parts of `changes[i]` changes; whole one-part packets sometimes share a message. */
function publisherMessages(packets: readonly (readonly number[])[], share: readonly boolean[]) {
  const out: Body[] = [];
  packets.forEach((parts, i) => {
    const version = i + 1;
    const previous = out[out.length - 1];
    if (
      parts.length === 1 &&
      share[i] &&
      previous?.position.final &&
      previous.position.part === 0
    ) {
      // Both whole: one message holding the previous packets and this one.
      const first = previous.position.first ?? previous.position.version;
      const changes = parts[0] as number;
      out[out.length - 1] = {
        position: { version, part: 0, changes, final: 'one', first },
        held: changes,
      };
      return;
    }
    let total = 0;
    parts.forEach((held, part) => {
      total += held;
      const final = part === parts.length - 1 ? 'one' : null;
      out.push({ position: { version, part, changes: total, final }, held });
    });
  });
  return out;
}

/**
 * A bus: our messages with stale copies (of a span of them) stored in
 * between and some dropped, sequences with gaps, some not signed.
 */
const busArbitrary = fc
  .record({
    packets: fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 }), {
      minLength: 1,
      maxLength: 10,
    }),
    share: fc.array(fc.boolean(), { maxLength: 10 }),
    /** Per message: whether it names its predecessor's digest (else none, or one of a message not stored). */
    chain: fc.array(fc.constantFrom('previous', 'none', 'elsewhere'), { minLength: 1 }),
    edits: fc.array(
      fc.record({
        at: fc.nat(),
        kind: fc.constantFrom('stale', 'drop', 'gap', 'recount', 'unsigned'),
        from: fc.nat(),
        length: fc.integer({ min: 1, max: 4 }),
      }),
      { maxLength: 4 },
    ),
  })
  .map(({ packets, share, chain, edits }) => {
    const bodies = publisherMessages(packets, share);
    const gaps = new Set<number>();
    for (const edit of edits) {
      const at = edit.at % (bodies.length + 1);
      if (edit.kind === 'stale') {
        const from = edit.from % bodies.length;
        bodies.splice(at, 0, ...bodies.slice(from, from + edit.length));
      } else if (edit.kind === 'drop' && bodies.length > 1) bodies.splice(at % bodies.length, 1);
      else if (edit.kind === 'gap') gaps.add(at);
      else if (edit.kind === 'recount') {
        const body = bodies[at % bodies.length] as Body;
        const position = { ...body.position, changes: body.position.changes + 1 };
        bodies[at % bodies.length] = { position, held: body.held + 1 };
      } else if (edit.kind === 'unsigned') {
        const body = bodies[at % bodies.length] as Body;
        bodies[at % bodies.length] = { ...body, signed: false };
      }
    }
    let sequence = 1;
    const out: StoredPart[] = [];
    bodies.forEach((body, i) => {
      // A sequence removed (a repaired tail) before this message.
      if (gaps.has(i)) sequence++;
      // A message of this key names only what this key appended: never a foreign one's digest.
      const before = out[i - 1];
      const link = chain[i % chain.length];
      const chained =
        link === 'previous' && before?.signed()
          ? before.digest()
          : link === 'elsewhere'
            ? 'not-stored'
            : undefined;
      // A forger names whatever it likes: the digest of the message before it.
      out.push(stored(sequence++, body, body.signed === false ? before?.digest() : chained));
    });
    return out;
  });

describe('the walk back from the end of the bus', () => {
  it('finds what the walk that kept every message found, keeping only the last packet’s start', async () => {
    await fc.assert(
      fc.asyncProperty(
        busArbitrary,
        fc.integer({ min: 0, max: 14 * 16 + 1 }),
        fc.integer({ min: 0, max: 14 }),
        async (messages, confirmedAt, head) => {
          const confirmed = `0/${confirmedAt.toString(16).toUpperCase()}` as Lsn;
          const last = messages[messages.length - 1] as StoredPart;
          const log = memoryPacketLog([...messages]);
          const expected = await walkKeepingAll(log, last, confirmed, head);
          expect(await checkTail(log, last, confirmed, head)).toEqual(expected);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
