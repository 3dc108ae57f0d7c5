import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';

/**
 * A round's members are the command's `replicas`; the stream's marker packet
 * reaches every replica the sidecar serves, and one outside the round only
 * advances its version there, without the migration. So a configuration
 * lacking a served replica (an older file, the sidecar's reloaded since) is
 * refused before anything is prepared: it may not do less than the sidecar's.
 */
export function refuseUnknownReplicas(config: LockstepConfig, served: readonly string[]): void {
  const known = new Set(config.replicas.map((r) => r.name));
  const missing = served.filter((name) => !known.has(name)).sort();
  const [first] = missing;
  if (first === undefined) return;
  const names = missing.join(', ');
  throw new LockstepError({
    node: first,
    setting: 'replicas',
    problem: `the stream "${config.slot}" serves ${names}, which this configuration's replicas do not list (one attach is joining counts): ${missing.length > 1 ? 'they' : 'it'} would get the round's marker without its statements`,
    fix: `run this with the configuration the sidecar reads (it lists ${names}); if ${missing.length > 1 ? 'they were' : 'it was'} removed: a sidecar started with that configuration forgets ${missing.length > 1 ? 'them' : 'it'} (restart it if a reload did not), and a join hold left by a stopped attach (lockstep status: joinHolds) counts until an attach of that replica finishes, or detach`,
  });
}
