import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import { AgentSilence, probeIntervalMs } from '../../plugin/protocol/agent-silence.js';
import { dropIfUnresponsive } from './nats-connection.js';
import { type AgentAddress, askAgent } from './nats-round-participant.js';
import { noResponders } from './round-requests.js';

/**
 * One look at whether the agent's process runs: any answer to `alive` is
 * life (a refusal too). Nothing serving `alive` is either an agent older
 * than that verb or no agent at all: `applied`, which every agent serves,
 * tells them apart.
 */
export async function agentAnswers(address: AgentAddress, timeoutMs: number): Promise<boolean> {
  try {
    await askAgent(address, 'alive', {}, timeoutMs);
    return true;
  } catch (error) {
    // A deposed refusal is an answer: the agent runs.
    if (error instanceof DeposedError) return true;
    if (!noResponders(error)) {
      // Our own server may be the one that hangs: leave it now rather than once pings run out.
      await dropIfUnresponsive(address.nc);
      return false;
    }
  }
  try {
    await askAgent(address, 'applied', {}, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/**
 * `work` (a request outstanding at the agent), given up on with `silent()`'s
 * error once the agent answered no probe for `limitMs`: a frozen agent must
 * not hold the round for the request's whole cap. Probes stop when `work`
 * settles.
 */
export async function whileAgentAnswers<T>(
  work: Promise<T>,
  probe: (timeoutMs: number) => Promise<boolean>,
  limitMs: number,
  silent: (silentMs: number) => Error,
): Promise<T> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  const settledOrAfter = (ms: number) =>
    Promise.race([
      done.then(
        () => undefined,
        () => undefined,
      ),
      new Promise<void>((resolve) => setTimeout(resolve, ms).unref()),
    ]);
  const watch = async (): Promise<T> => {
    const silence = new AgentSilence(limitMs, Date.now());
    const interval = probeIntervalMs(limitMs);
    while (!settled) {
      const sent = Date.now();
      if (await probe(interval)) silence.heard(sent);
      if (settled) break;
      if (silence.overdue(Date.now())) throw silent(silence.silentMs(Date.now()));
      await settledOrAfter(interval - (Date.now() - sent));
    }
    return done;
  };
  return Promise.race([done, watch()]);
}
