import type { PrimaryStream } from '../primary/primary-stream.js';
import {
  type Lsn,
  lsnBefore,
  lsnToBigInt,
  type PacketPart,
  type ResumePoint,
} from '../protocol/index.js';
import type { PacketsBetween } from './bus-rederive.js';

/** How often an idle stream is looked at for a keepalive past `through` (ms). */
const IDLE_CHECK_MS = 200;

/**
 * Counts the packets a stream opened at version 0 assembles up to the
 * commit LSN `through`: the last such packet's version. It is past `through`
 * at the first packet committed after it, or at an idle point (a keepalive
 * between transactions) at or after it. The stream is the caller's to stop.
 */
async function packetsThrough(stream: PrimaryStream, through: Lsn): Promise<number> {
  const end = lsnToBigInt(through);
  /** The version of the last packet seen: with numbering from 0, how many there were. */
  let counted = 0;
  let pending: Promise<PacketPart | null> | null = null;
  for (;;) {
    const idle = stream.idlePoint;
    // An idle point names the stream's last version: one taken by the pending wait is not counted yet.
    if (idle && idle.version === counted && lsnToBigInt(idle.lsn) >= end) return counted;
    // Parts already decoded are taken as they are: a timer is armed only to wait (a count can
    // pass a whole serverSyncInterval of packets).
    let part: PacketPart | null | undefined = pending ? undefined : stream.poll();
    if (part === undefined) {
      pending ??= stream.next();
      part = await Promise.race([pending, idleTick()]);
      if (part === undefined) continue;
      pending = null;
    }
    if (part === null) throw new Error('the primary stream ended before the recorded head');
    if (lsnToBigInt(part.header.lsn) > end) return counted;
    counted = part.header.version;
  }
}

/** Resolves after {@link IDLE_CHECK_MS}, holding nothing open. */
function idleTick(): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), IDLE_CHECK_MS).unref());
}

/** {@link PacketsBetween} on streams `open` opens from the slot's WAL (nothing of it is acknowledged). */
export function packetCounter(
  open: (resume: ResumePoint) => Promise<PrimaryStream>,
): PacketsBetween {
  return async (from, through) => {
    // Numbering from 0 at one before the slot's point: every packet the slot holds counts.
    const stream = await open({ version: 0, lsn: lsnBefore(from) });
    try {
      return await packetsThrough(stream, through);
    } finally {
      await stream.stop();
    }
  };
}
