import { LockstepError } from '../ports/lockstep-error.js';
import type { PacketLog, StoredPart } from '../ports/packet-bus.js';
import { isFragment } from '../protocol/change-fragments.js';
import { type Lsn, lsnToBigInt, type ResumePoint } from '../protocol/index.js';
import { checkTail, type PacketStart, removeTail, type TailRepair } from './bus-chain.js';
import type { PacketCursor } from './bus-messages.js';
import { type PacketsBetween, rederiveBelowHead } from './bus-rederive.js';

/** Where publishing picks up: the stream's resume point, what of its next packet is stored, the subject's last sequence. */
export interface BusResume {
  readonly resume: ResumePoint;
  /** The packet stored in part (its first parts are on the bus); null when the last stored packet is whole. */
  readonly cursor: PacketCursor | null;
  readonly lastSequence: number;
  /** The last message kept on the bus: the first new one names its chain digest (when it is the publisher's). */
  readonly kept?: StoredPart;
  /** Messages removed from the end of the bus before resuming: they did not follow the chain. */
  readonly repaired?: TailRepair;
  /** An empty bus below the recorded head: packets re-derived from the slot, with their versions. */
  readonly rederived?: { readonly packets: number; readonly head: ResumePoint };
}

const fix = 'lockstep attach --resync for every replica, after removing the bus stream';

/**
 * Reads where the bus ends: after a whole packet, the stream resumes from it;
 * in the middle of one, from the packet before, and the re-derived changes
 * already stored are skipped. An empty bus starts where numbering starts
 * (`start`: the recorded head, else attach's point), or, when the head is past
 * the slot's confirmed point (a power loss of the NATS nodes lost packets the
 * slot still holds), from that point with the version it had (bus-rederive.ts). A head recorded at an
 * idle point of that same packet (nothing replicated after it) moves the
 * resume point up to it: the slot may be confirmed that far. Fails closed when
 * the slot already released WAL the bus lacks. Before any of that, the
 * messages after the slot's confirmed point are checked to follow each
 * other; from the first that does not, they are removed (bus-chain.ts),
 * all of them when it is the oldest: the bus then resumes as an empty one.
 */
export async function busResume(
  log: PacketLog,
  start: () => Promise<ResumePoint | null>,
  slotConfirmed: () => Promise<Lsn | null>,
  /** Told how many messages the walk back from the end read (what resuming cost, for the log). */
  walk: { read: number } = { read: 0 },
  /** Counts the packets between the slot and the head; without it, an empty bus below the head is refused. */
  packetsBetween?: PacketsBetween,
): Promise<BusResume> {
  // The end first: a message stored in between makes the first publish refused, never follow the wrong one.
  const end = await log.end();
  const newest = await log.last();
  const confirmed = await slotConfirmed();
  const head = (await start())?.version ?? 0;
  const tail = newest && confirmed ? await checkTail(log, newest, confirmed, head) : null;
  walk.read = tail?.walked ?? 0;
  // Nothing kept (the bus's oldest message broke the chain): resumed as an empty bus.
  const last = tail ? tail.last : newest;
  const stored = last
    ? await fromStored(log, last, tail?.start ?? packetStart(last), start)
    : await belowHead(await fromStart(end, start), confirmed, packetsBetween);
  const resumed = last ? await pastIdle(stored, start) : stored;
  // Appends follow the stream's last sequence, also when removed messages (a repaired tail) end it.
  const plan = {
    ...resumed,
    lastSequence: end,
    ...(last ? { kept: last } : {}),
    ...(tail?.repair ? { repaired: tail.repair } : {}),
  };
  if (confirmed && lsnToBigInt(plan.resume.lsn) + 1n < lsnToBigInt(confirmed)) {
    if (tail?.repair) throw brokenBeforeConfirmed(tail.repair, confirmed);
    throw new LockstepError({
      node: 'bus',
      // The slot is confirmed only once JetStream acknowledged: the stream's answer comes from a
      // leader behind it (nats-server 2.9 can elect one; it passes) or the stream lost packets.
      problem: `the bus ends at version ${plan.resume.version} (${plan.resume.lsn}), before the slot's confirmed point ${confirmed}: the stream's leader is behind what JetStream acknowledged, or packets in between are lost`,
      fix: `none while it passes with a new leader; should it persist, ${fix}`,
    });
  }
  // Removed only now: a tail the slot vouches for is never removed, the bus stays as it was.
  if (tail) await removeTail(log, tail);
  return plan;
}

/** A break with messages the slot vouches for behind it: removing them would lose them. */
function brokenBeforeConfirmed(repair: TailRepair, confirmed: Lsn): LockstepError {
  const { from, after, found, unsigned } = repair;
  const held = unsigned
    ? `version ${found.version} part ${found.part} at sequence ${from}, not signed with this publisher's key,`
    : `version ${found.version} part ${found.part} at sequence ${from} where what follows version ${after?.version} part ${after?.part} belongs,`;
  return new LockstepError({
    node: 'bus',
    problem: `the bus holds ${held} and packets the slot's confirmed point ${confirmed} vouches for are stored behind it: removing them would lose them, so nothing was removed`,
    fix,
  });
}

/** An empty bus: from the slot's confirmed point instead of the head when packets lie in between. */
async function belowHead(
  plan: BusResume,
  confirmed: Lsn | null,
  packetsBetween: PacketsBetween | undefined,
): Promise<BusResume> {
  const rederived = await rederiveBelowHead(plan.resume, confirmed, packetsBetween);
  if (!rederived) return plan;
  return {
    ...plan,
    resume: rederived.resume,
    rederived: { packets: rederived.packets, head: plan.resume },
  };
}

/** The resume point moved up to the recorded head when the head is the same packet at a later (idle) point. */
async function pastIdle(
  plan: BusResume,
  start: () => Promise<ResumePoint | null>,
): Promise<BusResume> {
  const head = await start();
  if (!head || head.version !== plan.resume.version) return plan;
  if (lsnToBigInt(head.lsn) <= lsnToBigInt(plan.resume.lsn)) return plan;
  return { ...plan, resume: head };
}

async function fromStart(
  end: number,
  start: () => Promise<ResumePoint | null>,
): Promise<BusResume> {
  const resume = await start();
  if (!resume)
    throw new LockstepError({
      node: 'primary',
      problem: 'the stream is not attached: nothing says where packet numbering starts',
      fix: 'lockstep attach',
    });
  // Messages name the stream's last sequence they follow: retention may have emptied a stream that had some.
  return { resume, cursor: null, lastSequence: end };
}

/** What is known of the start of `last`'s packet without reading the bus. */
function packetStart(last: StoredPart): PacketStart {
  return { first: last.position.part === 0 ? last : null, before: null };
}

/**
 * The message before the first part of `last`'s packet: the one the walk
 * read, else the one before the first part when the walk read that, else by
 * the sequence parts are stored at.
 */
async function packetBefore(
  log: PacketLog,
  last: StoredPart,
  start: PacketStart,
): Promise<StoredPart | null> {
  if (start.before) return start.before;
  if (start.first) return log.before(start.first.sequence);
  const before = last.sequence - last.position.part - 1;
  return before >= 1 ? log.at(before) : null;
}

async function fromStored(
  log: PacketLog,
  last: StoredPart,
  packet: PacketStart,
  start: () => Promise<ResumePoint | null>,
): Promise<BusResume> {
  const { position, part, sequence } = last;
  if (position.final)
    return {
      resume: { version: position.version, lsn: part.header.lsn },
      cursor: null,
      lastSequence: sequence,
    };
  // The message before the packet's first part ends the previous packet.
  const previous = await packetBefore(log, last, packet);
  // None before it, or retention took it (a bus emptied while idle, then a packet of several
  // messages): the recorded head names the packet before, when it is that one.
  const resume = previous
    ? previous.position.final
      ? { version: previous.position.version, lsn: previous.part.header.lsn }
      : null
    : await start();
  if (!resume || resume.version !== position.version - 1)
    throw new LockstepError({
      node: 'bus',
      problem: `the bus ends inside packet ${position.version}, and the packet before it is not there to resume from`,
      fix,
    });
  const cursor: PacketCursor = {
    version: position.version,
    nextPart: position.part + 1,
    seen: 0,
    stored: position.changes,
  };
  // The bus ends inside a change sent in fragments: it goes on at the byte after the last one stored.
  if (isFragment(part) && part.offset + part.bytes.length < part.total)
    cursor.partial = part.offset + part.bytes.length;
  return { resume, cursor, lastSequence: sequence };
}
