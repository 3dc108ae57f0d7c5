import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { ReplicaLockPort } from '../ports/packet-reader.js';
import type { StreamPosition } from '../ports/resync-guard.js';
import { packetStreamName } from '../protocol/packet-bus-names.js';
import { unplacedReplicas } from './join.js';

/**
 * Where a replica resyncs from with `bus`: the head the publisher recorded on
 * the primary. Not another replica's position (as in process): the publisher
 * confirms the slot up to that head, so the slot no longer has WAL for
 * replicas behind it, and the bus may no longer hold their next packets
 * either. The head is written durably only once JetStream acknowledged it and
 * before the slot is confirmed to it, so every packet after it is on the bus
 * or is published later from the slot's WAL; they are the bus's newest, the
 * last that retention removes. Before any head is recorded nothing was
 * confirmed: version 0 at the stream's start, as the publisher itself numbers
 * on (create-sidecar attachPoint). The head is read before the copy's
 * snapshot is taken, so the agent's rule (a change committed before a table's
 * copy LSN is skipped, the same replica target as in process) drops exactly
 * what the copy already holds.
 */
export async function busResyncAnchor(
  primary: PrimarySession,
  stream: string,
): Promise<StreamPosition> {
  const head = await primary.streams.head(stream);
  if (head?.lsn && head.version > 0) return { version: head.version, lsn: head.lsn };
  const start = await primary.streams.startLsn(stream);
  if (start) return { version: 0, lsn: start };
  throw new LockstepError({
    node: 'primary',
    problem: `stream "${stream}" is not attached: a resync has no starting point`,
    fix: 'lockstep attach --config F (without --resync)',
  });
}

/**
 * Takes the agent lock of each replica in `names` (with `bus`, the agent
 * applies to it, not lockstep run), adding each to `held` for the caller to
 * release. Refused, nothing marked or emptied, while an agent holds one; an
 * agent started during the resync stands by until the locks are released.
 */
export async function takeAgentLocks(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
  held: Map<string, ReplicaLockPort>,
): Promise<void> {
  for (const name of names) {
    const replica = config.replicas.find((r) => r.name === name);
    if (!replica) continue; // Named in the configuration: checked with the resync lock.
    const lock = cluster.replicaAgentLock(name, replica.url, config.slot);
    held.set(name, lock);
    if (!(await lock.tryAcquire()))
      throw new LockstepError({
        node: name,
        problem:
          'its lockstep agent is applying (it holds the agent lock on the replica): a resync must not empty the replica under it',
        fix: `stop the lockstep agent of ${name} (lockstep agent --replica ${name}), run the resync, then start the agent again: it reads the bus from where the resync placed the replica`,
      });
  }
}

/**
 * `--resync all` with `bus`, refused before anything changes: a start-over
 * numbers the stream from version 0 again, while the JetStream stream still
 * holds the old versions; agents would replay them onto the fresh copies and
 * the publisher could never publish the new ones under those numbers.
 */
export function refuseBusStartOver(config: LockstepConfig): LockstepError {
  const stream = packetStreamName(config.slot, config.bus?.stream);
  return new LockstepError({
    node: 'primary',
    setting: 'bus',
    problem: `attach --resync all restarts stream "${config.slot}" at version 0, but the JetStream stream ${stream} still holds its old versions: agents would apply them onto the fresh copies`,
    fix: `resync the replicas by name (lockstep attach --resync NAME, each with its agent stopped); or start over: lockstep detach, delete the JetStream stream (nats stream rm ${stream}), then lockstep attach`,
  });
}

/**
 * With `bus`, a named resync places only the replicas it names: another one
 * without a position (a resync that failed midway) would be taken for a
 * joining replica, which a bus attach does not serve. Refused before anything
 * is marked or emptied, naming them.
 */
export async function refuseOthersUnplaced(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
): Promise<void> {
  const others = [...(await unplacedReplicas(cluster, config))].filter((n) => !names.includes(n));
  if (others.length > 0) throw othersUnplaced(config, names, others);
}

/** The refusal of a bus resync that would leave `others` (no position) half-copied. */
export function othersUnplaced(
  config: LockstepConfig,
  names: readonly string[],
  others: readonly string[],
): LockstepError {
  return new LockstepError({
    node: others[0] as string,
    problem: `${others.join(', ')} ${others.length > 1 ? 'have' : 'has'} no position in stream "${config.slot}" (a resync that failed midway): a resync of ${names.join(', ')} alone would leave ${others.length > 1 ? 'them' : 'it'} half-copied`,
    fix: `resync them together, each agent stopped: lockstep attach --resync ${[...names, ...others].join(' ')}`,
  });
}
