import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';

/**
 * A round's members are the command's `replicas`; the stream's marker packet
 * reaches every replica the sidecar serves, and one outside the round only
 * advances its version there, without the migration. So a configuration
 * lacking a served replica (an older file, the sidecar's reloaded since) is
 * refused before anything is prepared: it may not do less than the sidecar's.
 */
export function refuseUnknownReplicas(
  config: LockstepConfig,
  served: readonly string[],
  /** With `bus`: what serves them is each one's agent, reporting to the bus. */
  byAgents = false,
): void {
  const known = new Set(config.replicas.map((r) => r.name));
  const missing = served.filter((name) => !known.has(name)).sort();
  const [first] = missing;
  if (first === undefined) return;
  const names = missing.join(', ');
  const they = missing.length > 1;
  const holds = `a join hold left by a stopped attach (lockstep status: joinHolds) counts until an attach of ${they ? 'those replicas' : 'that replica'} finishes, or detach`;
  throw new LockstepError({
    node: first,
    setting: 'replicas',
    problem: `the stream "${config.slot}" serves ${names}, which this configuration's replicas do not list (one attach is joining counts): ${missing.length > 1 ? 'they' : 'it'} would get the round's marker without its statements`,
    fix: byAgents
      ? `run this with the configuration the agents and the sidecar read (it lists ${names}); if ${they ? 'they were' : 'it was'} removed: stop ${they ? 'their agents' : 'its agent'} (a report on the bus stops counting once stale, a few heartbeats later), and ${holds}`
      : `run this with the configuration the sidecar reads (it lists ${names}); if ${they ? 'they were' : 'it was'} removed: a sidecar started with that configuration forgets ${they ? 'them' : 'it'} (restart it if a reload did not), and ${holds}`,
  });
}
