import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import {
  AgentSilence,
  type MigrationAtAgent,
  probeIntervalMs,
} from '../../plugin/protocol/agent-silence.js';
import { dropIfUnresponsive } from './nats-connection.js';
import { type AgentAddress, askAgent } from './nats-round-participant.js';
import { noResponders } from './round-requests.js';
import { watchedRequest } from './watched-request.js';

/** What one probe of the agent found: nothing (`silent`), or what it says of the migration. */
export type AgentProbe = 'silent' | MigrationAtAgent;

/**
 * One look at the agent while it prepares migration `gid`: any answer to
 * `alive` is life (a refusal too), and says where that migration stands
 * there. Nothing serving `alive` is either an agent older than that verb or
 * no agent at all: `applied`, which every agent serves, tells them apart.
 */
export async function probeAgent(
  address: AgentAddress,
  timeoutMs: number,
  gid: string,
): Promise<AgentProbe> {
  try {
    const reply = await askAgent<{ migration?: MigrationAtAgent } | null>(
      address,
      'alive',
      { gid },
      timeoutMs,
    );
    return (reply.ok && reply.value?.migration) || 'preparing';
  } catch (error) {
    // A deposed refusal is an answer: the agent runs.
    if (error instanceof DeposedError) return 'preparing';
    if (!noResponders(error)) {
      // Our own server may be the one that hangs: leave it now rather than once pings run out.
      await dropIfUnresponsive(address.nc);
      return 'silent';
    }
  }
  try {
    await askAgent(address, 'applied', {}, timeoutMs);
    return 'preparing';
  } catch {
    return 'silent';
  }
}

/** How `whileAgentAnswers` ends a request it gave up on. */
export interface AgentWatchErrors {
  /** The agent answered no probe for the limit. */
  silent(silentMs: number): Error;
  /** The agent runs but has the migration neither in hand nor prepared: the request or its answer was lost. */
  lost(): Error;
}

/** Probes in a row saying the agent has no such migration before it counts as lost (one may cross the request). */
const LOST_AFTER = 2;

/**
 * `work` (a `migrate` request outstanding at the agent), settled early from
 * the agent's probes: failed once the agent answered none for `limitMs` (a
 * frozen agent must not hold the round for the request's whole cap), done
 * once the agent says it prepared the migration, failed once it says, twice
 * in a row, it has none (NATS delivers at most once: a request or an answer
 * lost while a client changed servers). Probes stop when `work` settles.
 */
export async function whileAgentAnswers(
  work: Promise<void>,
  probe: (timeoutMs: number) => Promise<AgentProbe>,
  limitMs: number,
  errors: AgentWatchErrors,
): Promise<void> {
  const request = watchedRequest(work);
  const { done, settledOrAfter } = request;
  const watch = async (): Promise<void> => {
    const silence = new AgentSilence(limitMs, Date.now());
    const interval = probeIntervalMs(limitMs);
    let none = 0;
    while (!request.settled) {
      const sent = Date.now();
      const found = await probe(interval);
      if (found !== 'silent') silence.heard(sent);
      if (request.settled) break;
      if (found === 'prepared') return;
      none = found === 'none' ? none + 1 : 0;
      if (none >= LOST_AFTER) throw errors.lost();
      if (silence.overdue(Date.now())) throw errors.silent(silence.silentMs(Date.now()));
      await settledOrAfter(interval - (Date.now() - sent));
    }
    return done;
  };
  return Promise.race([done, watch()]);
}
