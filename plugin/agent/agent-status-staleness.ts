import type { AgentStatusRecord } from '../protocol/agent-status-record.js';

/** Heartbeats an agent may miss before its report counts as stale. */
export const STALE_AFTER_BEATS = 5;

/** Whether a stored report still tells the replica's state. */
export type AgentFreshness =
  | { readonly stale: false }
  | {
      readonly stale: true;
      readonly ageSeconds: number;
      readonly problem: string;
      readonly fix: string;
    };

/**
 * Judges a report by its age: stale once `STALE_AFTER_BEATS` heartbeats are
 * missing. The age counts from the older of the agent's own clock and the
 * time the bus stored it, so a clock running ahead on either side cannot keep
 * a dead agent looking alive (a clock behind makes it look stale early:
 * failing closed).
 */
export function agentFreshness(
  record: AgentStatusRecord,
  storedAt: Date,
  now: Date,
): AgentFreshness {
  const at = Math.min(Date.parse(record.heartbeat.at), storedAt.getTime());
  const ageMs = now.getTime() - at;
  if (ageMs <= STALE_AFTER_BEATS * record.heartbeat.everyMs) return { stale: false };
  const ageSeconds = Math.round(ageMs / 1000);
  const who = `${record.agent.host} pid ${record.agent.pid}`;
  const last = record.error ? ` (its last error: ${record.error.problem})` : '';
  return {
    stale: true,
    ageSeconds,
    problem: `the agent of ${record.replica} (${who}) last reported ${ageSeconds}s ago, in state ${record.state}${last}: it is stopped, hung or cut off from the bus`,
    fix: `check lockstep agent --replica ${record.replica} on ${record.agent.host} (running, reaching the bus), and that the clocks of that host and this one agree`,
  };
}
