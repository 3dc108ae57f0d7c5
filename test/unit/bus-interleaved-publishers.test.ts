import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PartSequence } from '../../plugin/agent/part-sequence.js';
import type { StoredPart } from '../../plugin/ports/packet-bus.js';
import { isFragment } from '../../plugin/protocol/change-fragments.js';
import type { Change, Lsn, PacketHeader, PacketPart } from '../../plugin/protocol/index.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import { MessageBatch } from '../../plugin/sidecar/bus-batch.js';
import { follows } from '../../plugin/sidecar/bus-chain.js';
import {
  type BusMessage,
  busMessages,
  type PacketCursor,
} from '../../plugin/sidecar/bus-messages.js';
import { signature } from '../support/memory-packet-log.js';

/**
 * A deposed publisher and the ones that resumed after it, each from a
 * message another stored, cut one packet into messages their own way; the
 * bus holds their messages merged, some refused. Whatever the merge, an agent
 * takes only a true prefix of the packet (never a change lost, doubled or
 * out of order), and a chain the publisher's check accepts holds it whole.
 */

/** A small deterministic generator: one round's choices from one seed, so fast-check can replay it. */
function choices(seed: number) {
  let state = seed;
  return (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
}
type Choose = ReturnType<typeof choices>;

const header: PacketHeader = { version: 7, lsn: '0/70' as Lsn, xid: 7, commitTime: '' };
/** The two packets after it, whole, in one message of several (Lockstep-First). */
const following = [8, 9].map(
  (version): PacketPart => ({
    header: { version, lsn: `0/${version}0` as Lsn, xid: version, commitTime: '' },
    index: 0,
    changes: [{ kind: 'message', prefix: 'p', content: `v${version}` }],
    final: { phase: 'one' },
  }),
);

/** Changes of different sizes: some go in fragments. */
function changesOf(count: number, choose: Choose): Change[] {
  return Array.from({ length: count }, (_, i) => ({
    kind: 'message' as const,
    prefix: 'p',
    content: `c${i}:`.padEnd(3 + choose(i % 4 === 0 ? 600 : 80), 'x'),
  }));
}

/** The primary stream's parts of the packet, cut at random; its last with changes or none. */
function streamParts(changes: Change[], choose: Choose): PacketPart[] {
  const parts: PacketPart[] = [];
  for (let at = 0; at < changes.length; ) {
    const n = 1 + choose(6);
    parts.push({ header, index: parts.length, changes: changes.slice(at, at + n), final: null });
    at += n;
  }
  if (choose(2) === 0) {
    const last = parts[parts.length - 1] as PacketPart;
    parts[parts.length - 1] = { ...last, final: { phase: 'one' } };
  } else parts.push({ header, index: parts.length, changes: [], final: { phase: 'one' } });
  return parts;
}

function publish(changes: Change[], cursor: PacketCursor, choose: Choose): BusMessage[] {
  const maxBody = 150 + choose(700);
  const out: BusMessage[] = [];
  for (const part of streamParts(changes, choose)) out.push(...busMessages(part, cursor, maxBody));
  const batch = new MessageBatch(4096);
  for (const p of following) batch.add(p);
  out.push(batch.message().message);
  return out;
}

/** A resumed publisher's cursor, as bus-resume.ts builds it from the bus's last message. */
function resumedFrom(last: BusMessage): PacketCursor {
  const pieces = decodeBusPieces(last.body);
  const piece = pieces[pieces.length - 1];
  const cursor: PacketCursor = {
    version: 7,
    nextPart: last.position.part + 1,
    seen: 0,
    stored: last.position.changes,
  };
  if (piece && isFragment(piece) && piece.offset + piece.bytes.length < piece.total)
    cursor.partial = piece.offset + piece.bytes.length;
  return cursor;
}

/** The first publisher's first message, then every publisher's messages merged in runs, one in ten refused. */
function mergedBus(publishers: BusMessage[][], choose: Choose): BusMessage[] {
  const bus = [publishers[0]?.[0] as BusMessage];
  const at: number[] = publishers.map((_, i) => (i === 0 ? 1 : 0));
  for (;;) {
    const live = publishers.flatMap((p, i) => ((at[i] as number) < p.length ? [i] : []));
    if (live.length === 0) return bus;
    const i = live[choose(live.length)] as number;
    const messages = publishers[i] as BusMessage[];
    for (let run = 1 + choose(4); run > 0 && (at[i] as number) < messages.length; run--) {
      const message = messages[at[i] as number] as BusMessage;
      at[i] = (at[i] as number) + 1;
      if (choose(10) !== 0) bus.push(message);
    }
  }
}

/** What an agent takes reading the bus from packet 7, until a gap or packet 9's end. */
function agentTakes(bus: BusMessage[]): { contents: string[]; whole: boolean } {
  const sequence = new PartSequence(7);
  const contents: string[] = [];
  for (const message of bus) {
    const pieces = decodeBusPieces(message.body);
    for (const [k, piece] of pieces.entries()) {
      const through = k === pieces.length - 1 ? message.position.changes : null;
      const checked = sequence.check(piece, through);
      if (checked.verdict === 'gap') return { contents, whole: false };
      if (checked.verdict !== 'take') continue;
      contents.push(...checked.part.changes.map((c) => (c as { content: string }).content));
      if (checked.part.final && checked.part.header.version === 9) return { contents, whole: true };
    }
  }
  return { contents, whole: false };
}

/** Whether the publisher's chain check accepts the bus up to packet 9 (from packet 7's first message). */
function chainAccepted(bus: BusMessage[]): boolean {
  const stored = bus.map((m, i): StoredPart => {
    const pieces = decodeBusPieces(m.body);
    return {
      sequence: i + 1,
      position: m.position,
      part: pieces[pieces.length - 1] as never,
      ...signature(i + 1),
    };
  });
  const end = stored.findIndex((s) => s.position.version === 9);
  if (end < 0 || stored[0]?.position.part !== 0) return false;
  const prefix = stored.slice(0, end + 1);
  return prefix.every((s, i) => i === 0 || follows(prefix[i - 1] as StoredPart, s));
}

function round(seed: number): void {
  const choose = choices(seed);
  const original = changesOf(3 + choose(25), choose);
  const first = publish(original, { version: 7, nextPart: 0, seen: 0, stored: 0 }, choose);
  const publishers = [first];
  for (let p = 1 + choose(3); p > 0; p--) {
    const base = publishers[choose(publishers.length)] as BusMessage[];
    const from = base[choose(base.length)] as BusMessage;
    if (!from.position.final) publishers.push(publish(original, resumedFrom(from), choose));
  }
  const bus = mergedBus(publishers, choose);
  const want = [...original.map((c) => (c as { content: string }).content), 'v8', 'v9'];
  const { contents, whole } = agentTakes(bus);
  expect(contents).toEqual(want.slice(0, contents.length));
  if (whole) expect(contents).toEqual(want);
  if (chainAccepted(bus)) expect(whole).toBe(true);
}

describe('publishers that cut one packet differently, merged on the bus', () => {
  it('never make an agent take a change lost, doubled or out of order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 2 }), (seed) => round(seed)),
      { numRuns: 3_000 },
    );
  });
});
