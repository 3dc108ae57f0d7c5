import { ApplyError } from '../ports/apply-error.js';
import type { PacketNotPastError } from '../protocol/index.js';

/**
 * The replica's halt before a packet that is next by version but not past the
 * replica's LSN: the stream's versions shifted (see `movesPast`). A plain
 * halt, not stale: the replica is sound and a copy would hide the cause, while
 * replicas past the same point may have skipped packets without a sign.
 */
export function notPastError(node: string, { held, packet }: PacketNotPastError): ApplyError {
  return new ApplyError({
    node,
    kind: 'renumbered',
    version: packet.version,
    reason: 'stream-renumbered',
    problem: `the stream's version ${packet.version} (commit LSN ${packet.lsn}) is not past this replica's version ${held.version} (LSN ${held.lsn}): it is a packet the replica already has, numbered anew (captureDdl or the publication changed before packets were derived again from the slot?)`,
    fix: `copy the replica anew: lockstep attach --resync ${node} (with bus, with this agent stopped); resync the other replicas too, as the README says for such a change (one further on may have skipped packets unnoticed)`,
  });
}
