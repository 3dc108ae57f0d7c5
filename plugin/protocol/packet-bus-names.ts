import type { Phase } from './packet.js';

/**
 * Names the publisher and the agents agree on (DESIGN.md, "Scale-out: the
 * packet bus"): one subject per stream of packets, and message headers that
 * let a reader find its position without decoding a body.
 */

/** The subject every packet part of slot `slot` is published to. */
export function packetSubject(slot: string): string {
  return `lockstep.${slot}.packets`;
}

/** The JetStream stream's name: the configured one, else `LOCKSTEP_<SLOT>` (slots are `[a-z0-9_]`). */
export function packetStreamName(slot: string, configured?: string): string {
  return configured ?? `LOCKSTEP_${slot.toUpperCase().replace(/[^A-Z0-9_-]/g, '_')}`;
}

/** Message headers of a packet part. */
export const PACKET_HEADERS = {
  /** The packet's version (decimal). */
  version: 'Lockstep-Version',
  /** The message's index within its packet: 0, 1, 2, … */
  part: 'Lockstep-Part',
  /** On the packet's last message only: its phase, `one` or `two`. */
  final: 'Lockstep-Final',
  /** Changes of the packet up to and including this message (decimal). */
  changes: 'Lockstep-Changes',
  /**
   * On a message carrying several whole packets only: the first one's
   * version. The other headers then describe the message's last packet.
   */
  first: 'Lockstep-First',
} as const;

/** Where a packet part stands, as its headers say. */
export interface PartPosition {
  readonly version: number;
  readonly part: number;
  /** Changes of the packet through this part. */
  readonly changes: number;
  /** On the packet's last part: its phase; null before. */
  readonly final: Phase | null;
  /** On a message of several whole packets: the first one's version (the others describe the last). */
  readonly first?: number;
}

/** The oldest version a message holds part of. */
export function firstVersion(position: PartPosition): number {
  return position.first ?? position.version;
}

/** Reads a part's position from header values; null when one is missing or not a number. */
export function partPosition(header: (name: string) => string | undefined): PartPosition | null {
  const number = (name: string) => {
    const text = header(name);
    return text !== undefined && /^\d{1,15}$/.test(text) ? Number(text) : null;
  };
  const version = number(PACKET_HEADERS.version);
  const part = number(PACKET_HEADERS.part);
  const changes = number(PACKET_HEADERS.changes);
  if (version === null || part === null || changes === null) return null;
  const final = header(PACKET_HEADERS.final);
  const out: PartPosition = {
    version,
    part,
    changes,
    final: final === 'one' || final === 'two' ? final : null,
  };
  const first = number(PACKET_HEADERS.first);
  return first === null ? out : { ...out, first };
}
