import type { PacketLog, StoredPart } from '../../plugin/ports/packet-bus.js';

/**
 * A packet log in memory holding `stored` (sequences ascending): removing a
 * message keeps the last sequence, as JetStream does; appends are not
 * stored (a unit test of where publishing resumes needs none).
 */
export function memoryPacketLog(
  stored: StoredPart[],
  maxBody = 1024,
): PacketLog & { readonly removed: number[] } {
  const end = stored.at(-1)?.sequence ?? 0;
  const removed: number[] = [];
  return {
    removed,
    last: async () => stored.at(-1) ?? null,
    at: async (sequence) => stored.find((m) => m.sequence === sequence) ?? null,
    before: async (sequence) => stored.findLast((m) => m.sequence < sequence) ?? null,
    // A few at a time, so that walks cross the reads' edges.
    readBack: async (sequence) =>
      stored
        .filter((m) => m.sequence < sequence)
        .slice(-3)
        .reverse(),
    remove: async (sequence) => {
      const at = stored.findIndex((m) => m.sequence === sequence);
      if (at >= 0) stored.splice(at, 1);
      removed.push(sequence);
    },
    end: async () => end,
    appender: () => ({ append: async () => 0 }),
    maxBody,
    close: async () => undefined,
  };
}

/** What a test's stored message says of its signature: checked as given, its digest named after its sequence. */
export function signature(sequence: number, signed = true): Pick<StoredPart, 'signed' | 'digest'> {
  // A foreign message at the sequence of one of ours has a digest of its own.
  return { signed: () => signed, digest: () => `${signed ? 'd' : 'f'}${sequence}` };
}
